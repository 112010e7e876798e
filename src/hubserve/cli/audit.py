"""`hubserve audit`: the server's audit log of changes as a table, newest first (needs an admin token)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from hubserve.cli import output
from hubserve.cli.common import JsonOption, TokenOption, UrlOption, cli_errors, make_client, want_json


@cli_errors
def audit(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Only changes at or after this ISO 8601 time (UTC if no offset).", show_default=False
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many entries.")] = 100,
    endpoint: Annotated[
        str | None,
        typer.Option("--endpoint", help="Only changes to this endpoint (or job id, token id).", show_default=False),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Show who changed what and when: time, token, source, action, target, status, request id."""
    with make_client(ctx, url, token) as client:
        entries = client.audit(limit=limit, since=since, endpoint=endpoint)
    if want_json(ctx, json_):
        output.print_json(entries)
    elif not entries:
        typer.echo("No changes recorded" + (f" since {since}." if since else "."))
    else:
        output.console().print(_table(entries))


def _table(entries: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("TIME (UTC)", "TOKEN", "SOURCE", "ACTION", "TARGET", "STATUS", "REQUEST ID"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        status = int(entry.get("status") or 0)
        who = str(entry.get("token_id"))
        if entry.get("token_name"):
            who += f" ({entry['token_name']})"
        table.add_row(
            str(entry.get("at", ""))[:19].replace("T", " "),
            who,
            str(entry.get("source") or "-"),
            str(entry.get("action") or f"{entry.get('method')} {entry.get('path')}"),
            str(entry.get("target") or "-"),
            Text(str(status), style="green" if status < 400 else "bold red"),
            str(entry.get("request_id")),
        )
    return table
