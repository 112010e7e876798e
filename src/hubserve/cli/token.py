"""`hubserve token ...`: create, list and revoke scoped tokens (needs an admin token).

A new token is printed once, on stdout alone so that ``$(hubserve token create ...)`` captures it;
the warning that it will not be shown again and its id go to stderr.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from hubserve.cli import output
from hubserve.cli.common import JsonOption, TokenOption, UrlOption, cli_errors, make_client, want_json

app = typer.Typer(name="token", help="Scoped tokens: create, list and revoke (admin).", no_args_is_help=True)

SCOPE_HELP = "admin, deploy, invoke or read; repeat for several."


@app.command("create")
@cli_errors
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A label for people: who or what uses the token.", show_default=False)],
    scope: Annotated[list[str], typer.Option("--scope", "-s", help=SCOPE_HELP, show_default=False)],
    endpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--endpoint",
            "-e",
            help="Limit the token to this endpoint; repeat for several (default: all).",
            show_default=False,
        ),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Create a token and print it once: it is not stored and cannot be shown again."""
    with make_client(ctx, url, token) as client:
        created = client.create_token(name, scope, endpoint or None)
    if want_json(ctx, json_):
        output.print_json(created)
    else:
        typer.echo(created["token"])
    limited = ", ".join(created.get("endpoints") or ()) or "all endpoints"
    typer.echo(
        f"Token {created['id']} ({created['name']}: {', '.join(created['scopes'])} on {limited}) created. "
        "Copy it now: it will not be shown again.",
        err=True,
    )


@app.command("list")
@cli_errors
def list_(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include revoked tokens.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """List tokens: id, name, scopes, endpoints, created, last used (never the tokens themselves)."""
    with make_client(ctx, url, token) as client:
        tokens = client.list_tokens(include_revoked=all_)
    if want_json(ctx, json_):
        output.print_json(tokens)
    elif not tokens:
        typer.echo("No tokens yet. Create one with `hubserve token create NAME --scope invoke`.")
    else:
        output.console().print(_table(tokens))


@app.command("revoke")
@cli_errors
def revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="The token's id (see `hubserve token list`).", show_default=False)],
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Revoke a token: every request that sends it is refused from now on."""
    with make_client(ctx, url, token) as client:
        revoked = client.revoke_token(token_id)
    if want_json(ctx, json_):
        output.print_json(revoked)
    else:
        typer.echo(f"Token {revoked['id']} ({revoked['name']}) revoked at {revoked['revoked_at']}.")


def _table(tokens: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("ID", "NAME", "SCOPES", "ENDPOINTS", "CREATED", "LAST USED", "REVOKED"):
        table.add_column(column, overflow="fold")
    for item in tokens:
        revoked = item.get("revoked_at")
        table.add_row(
            str(item.get("id")),
            str(item.get("name")),
            ",".join(item.get("scopes") or ()),
            ",".join(item.get("endpoints") or ()) or "(all)",
            _when(item.get("created_at")),
            _when(item.get("last_used_at")),
            Text(_when(revoked), style="bold red" if revoked else ""),
        )
    return table


def _when(value: Any) -> str:
    """An ISO time as 'YYYY-MM-DD HH:MM:SS' (UTC), or '-'."""
    return str(value)[:19].replace("T", " ") if value else "-"
