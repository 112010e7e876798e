"""`hubserve model ...`: the model registry: register, list, describe, approve, reject and delete versions.

Deploy a version with an endpoint whose ``model.source`` is ``registry://GROUP/N`` (that version) or
``registry://GROUP/latest-approved`` (rolled to each newly approved version).
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer
from rich.table import Table

from hubserve.cli import output
from hubserve.cli.common import JsonOption, TokenOption, UrlOption, cli_errors, make_client, want_json

app = typer.Typer(name="model", help="The model registry: versions of model groups, approval.", no_args_is_help=True)

GroupArg = Annotated[str, typer.Argument(help="The model group (letters, digits, hyphens).", show_default=False)]
VersionArg = Annotated[int, typer.Argument(help="The version number.", show_default=False)]


@app.command("register")
@cli_errors
def register(
    ctx: typer.Context,
    group: GroupArg,
    source: Annotated[str, typer.Argument(help="A local model folder (copied into the registry), a Hub repo id or a URI.",
                                          show_default=False)],
    revision: Annotated[str | None, typer.Option("--revision", help="Hub branch, tag or commit.")] = None,
    task: Annotated[str | None, typer.Option("--task", help="Default: inferred from the folder's config.")] = None,
    metric: Annotated[list[str] | None, typer.Option("--metric", "-m", help="NAME=VALUE; repeat for several.")] = None,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Register the group's next version (PendingManualApproval until approved)."""
    metrics = _metrics(metric or [])
    if source.startswith(("./", "../", "~")):  # the server resolves paths from its own folder, not this shell's
        source = os.path.abspath(os.path.expanduser(source))
    with make_client(ctx, url, token) as client:
        version = client.register_model(group, source, revision=revision, task=task, metrics=metrics,
                                        description=description)  # fmt: skip
    if want_json(ctx, json_):
        output.print_json(version)
    else:
        sha = f", sha256 {version['sha256'][:12]}" if version.get("sha256") else ""
        typer.echo(f"Registered {version['uri']} ({version['task'] or 'task unknown'}{sha}): "
                   f"{version['approval_status']}. Approve it with `hubserve model approve {group} {version['version']}`.")  # fmt: skip


def _metrics(pairs: list[str]) -> dict[str, Any] | None:
    if not pairs:
        return None
    found: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"'{pair}' is not NAME=VALUE", param_hint="--metric")
        try:
            found[name] = json.loads(value)
        except json.JSONDecodeError:
            found[name] = value
    return found


@app.command("list")
@cli_errors
def list_(
    ctx: typer.Context,
    group: Annotated[str | None, typer.Argument(help="A group: list its versions (default: list groups).",
                                                show_default=False)] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """List model groups, or one group's versions."""
    with make_client(ctx, url, token) as client:
        rows = client.list_model_versions(group) if group else client.list_model_groups()
    if want_json(ctx, json_):
        output.print_json(rows)
    elif not rows:
        typer.echo("No models registered yet. Register one with `hubserve model register GROUP ./folder`.")
    elif group:
        output.console().print(_versions_table(rows))
    else:
        output.console().print(_groups_table(rows))


@app.command("describe")
@cli_errors
def describe(ctx: typer.Context, group: GroupArg, version: VersionArg, url: UrlOption = None,
             token: TokenOption = None, json_: JsonOption = False) -> None:  # fmt: skip
    """A version's source, task, metrics, content hash, approval status and the endpoints that run it."""
    with make_client(ctx, url, token) as client:
        found = client.get_model_version(group, version)
    if want_json(ctx, json_):
        output.print_json(found)
        return
    for key in ("uri", "approval_status", "source_kind", "source", "revision", "task", "sha256", "description",
                "created_at", "updated_at"):  # fmt: skip
        typer.echo(f"{key + ':':17} {found.get(key) if found.get(key) not in (None, '') else '-'}")
    typer.echo(f"{'metrics:':17} {json.dumps(found.get('metrics') or {})}")
    typer.echo(f"{'endpoints:':17} {', '.join(found.get('endpoints') or ()) or '-'}")


@app.command("approve")
@cli_errors
def approve(ctx: typer.Context, group: GroupArg, version: VersionArg, url: UrlOption = None,
            token: TokenOption = None, json_: JsonOption = False) -> None:  # fmt: skip
    """Approve a version: endpoints on registry://GROUP/latest-approved roll to it."""
    with make_client(ctx, url, token) as client:
        found = client.approve_model_version(group, version)
    if want_json(ctx, json_):
        output.print_json(found)
    else:
        rolled = ", ".join(found.get("rolled_endpoints") or ()) or "none"
        typer.echo(f"{found['uri']} approved; endpoints rolling to it: {rolled}.")


@app.command("reject")
@cli_errors
def reject(ctx: typer.Context, group: GroupArg, version: VersionArg, url: UrlOption = None,
           token: TokenOption = None, json_: JsonOption = False) -> None:  # fmt: skip
    """Reject a version: it can no longer be deployed."""
    with make_client(ctx, url, token) as client:
        found = client.reject_model_version(group, version)
    if want_json(ctx, json_):
        output.print_json(found)
    else:
        typer.echo(f"{found['uri']} rejected.")


@app.command("delete")
@cli_errors
def delete(ctx: typer.Context, group: GroupArg, version: VersionArg, url: UrlOption = None,
           token: TokenOption = None, json_: JsonOption = False) -> None:  # fmt: skip
    """Delete a version no endpoint uses (its stored files go once no other version holds them)."""
    with make_client(ctx, url, token) as client:
        found = client.delete_model_version(group, version)
    if want_json(ctx, json_):
        output.print_json(found)
    else:
        typer.echo(f"{found['uri']} deleted.")


def _groups_table(groups: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("GROUP", "VERSIONS", "LATEST APPROVED", "CREATED"):
        table.add_column(column, overflow="fold")
    for item in groups:
        latest = item.get("latest_approved")
        table.add_row(str(item["name"]), str(item.get("versions")), str(latest) if latest else "-",
                      str(item.get("created_at"))[:19].replace("T", " "))  # fmt: skip
    return table


def _versions_table(versions: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("VERSION", "STATUS", "TASK", "SOURCE", "SHA256", "ENDPOINTS", "CREATED"):
        table.add_column(column, overflow="fold")
    for item in versions:
        table.add_row(
            str(item["version"]), str(item.get("approval_status")), str(item.get("task") or "-"),
            str(item.get("source")), str(item.get("sha256") or "-")[:12], ",".join(item.get("endpoints") or ()) or "-",
            str(item.get("created_at"))[:19].replace("T", " "),
        )  # fmt: skip
    return table
