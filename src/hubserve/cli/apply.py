"""`hubserve apply`, `plan` and `export`: endpoints as files, Terraform-like.

``plan`` compares the files with the live endpoints and exits 2 when something would change
(0 when nothing, 1 on errors) so CI can gate on it; ``apply`` prints the same plan, asks, carries
it out and waits for each endpoint; ``export`` writes the live endpoints as a file that
``apply`` takes back as a no-op. The deciding lives in ``hubserve.declarative``.
"""

from __future__ import annotations

import enum
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.text import Text

from hubserve.cli import output
from hubserve.cli.common import (
    JsonOption,
    TokenOption,
    UrlOption,
    cli_errors,
    confirm,
    fail,
    make_client,
    want_json,
)
from hubserve.cli.hints import in_cli_words
from hubserve.declarative.diff import compact, normalise
from hubserve.declarative.load import SpecsError, load_specs
from hubserve.declarative.plan import Action, Plan, make_plan
from hubserve.errors import EndpointNotFound, HubserveError
from hubserve.sdk.client import Client
from hubserve.terraform.hcl import endpoints_as_terraform

READY_STATES = ("running", "scaledToZero")


class ExportFormat(str, enum.Enum):
    YAML = "yaml"
    JSON = "json"
    TERRAFORM = "terraform"


FAILED_STATES = ("failed", "updateFailed")
PLAN_CHANGES_EXIT = 2

FileArg = Annotated[
    str, typer.Option("--file", "-f", help="Spec file: one spec, a list, endpoints: [...] or YAML documents ('-': stdin).")
]
PruneOption = Annotated[bool, typer.Option("--prune", help="Delete live endpoints that the file does not name.")]

_MARKS = {"create": ("+", "green"), "update": ("~", "yellow"), "delete": ("-", "red"), "unchanged": ("=", "dim")}


@cli_errors
def plan(
    ctx: typer.Context,
    file: FileArg,
    prune: PruneOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Show what apply would change; exit 2 when there are changes, 0 when none, 1 on errors."""
    with make_client(ctx, url, token) as client:
        the_plan = _plan(client, file, prune)
    _print_plan(ctx, json_, the_plan)
    if the_plan.has_changes:
        raise typer.Exit(PLAN_CHANGES_EXIT)


@cli_errors
def apply(
    ctx: typer.Context,
    file: FileArg,
    prune: PruneOption = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until each endpoint is running or failed.")] = True,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for the endpoints.")] = 600.0,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Make the live endpoints match the file: create, update (PUT) and, with --prune, delete."""
    with make_client(ctx, url, token) as client:
        the_plan = _plan(client, file, prune)
        as_json = want_json(ctx, json_)
        if not as_json:
            _print_plan(ctx, json_, the_plan)
        if not the_plan.has_changes:
            if as_json:
                output.print_json({"plan": the_plan.to_json(), "results": []})
            return
        if not yes:
            confirm("Apply these changes?", "apply", "applying")
        results = _carry_out(client, the_plan)
        if wait:
            pending: dict[str, str] = {a.name: a.kind for a in the_plan.actions if a.kind != "unchanged" and a.name not in results}
            results.update(_wait_all(client, pending, timeout))
    failed = _report(as_json, the_plan, results)
    if failed:
        raise typer.Exit(1)


@cli_errors
def export(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="Endpoints to export (default: all).", show_default=False)] = None,
    output_file: Annotated[str | None, typer.Option("--output", "-o", help="Write here instead of stdout.", show_default=False)] = None,
    format_: Annotated[
        ExportFormat | None,
        typer.Option("--format", help="yaml (default), json (as --json), or terraform: a configuration with an import "
                                      "block per endpoint that `terraform apply` adopts without changing anything.",
                     show_default=False),
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Write the live endpoints' specs as a file that `hubserve apply -f` (or Terraform) takes back unchanged."""
    with make_client(ctx, url, token) as client:
        items = client.list_endpoints()
        server_url = client.url
    by_name = {item["name"]: item for item in items if item.get("state") != "deleting"}
    missing = [name for name in names or () if name not in by_name]
    if missing:
        raise fail(f"no endpoint named {', '.join(missing)}")
    chosen = [by_name[name] for name in names] if names else [by_name[name] for name in sorted(by_name)]
    specs = [compact(normalise(item)) for item in chosen]
    if format_ is ExportFormat.TERRAFORM:
        text = endpoints_as_terraform(chosen, server_url)
    elif format_ is ExportFormat.JSON or (format_ is None and want_json(ctx, json_)):
        text = json.dumps({"endpoints": specs}, indent=2) + "\n"
    else:
        text = "# hubserve export: `hubserve apply -f` this file to reproduce these endpoints\n"
        text += yaml.safe_dump({"endpoints": specs}, sort_keys=False, allow_unicode=True)
    if output_file:
        Path(output_file).write_text(text, encoding="utf-8")
        typer.echo(f"Wrote {len(specs)} endpoint spec(s) to {output_file}", err=True)
    else:
        typer.echo(text, nl=False)


# --- helpers ---------------------------------------------------------------------------


def _plan(client: Client, file: str, prune: bool) -> Plan:
    try:
        desired = load_specs(file)
    except SpecsError as error:
        raise fail(str(error)) from None
    return make_plan(desired, client.list_endpoints(), prune=prune)


def _print_plan(ctx: typer.Context, json_: bool, the_plan: Plan) -> None:
    if want_json(ctx, json_):
        output.print_json(the_plan.to_json())
        return
    out = output.console()
    for action in the_plan.actions:
        mark, style = _MARKS[action.kind]
        line = Text(f"{mark} {action.kind:<9} ", style=style)
        line.append(action.name, style="bold")
        if action.state:
            line.append(f"  ({action.state})", style="dim")
        out.print(line)
        for change in action.changes:
            out.print(Text(f"      {change.describe()}"))
    for name in the_plan.unmanaged:
        out.print(Text(f"  not in file {name}  (kept; --prune deletes it)", style="dim"))
    out.print(Text(f"Plan: {the_plan.summary()}." if the_plan.has_changes else "No changes: the endpoints match the file."))


def _carry_out(client: Client, the_plan: Plan) -> dict[str, tuple[str, str | None]]:
    """Send each change; returns the actions that failed at once (name -> ("error", message))."""
    failures: dict[str, tuple[str, str | None]] = {}
    for action in the_plan.actions:
        try:
            _send(client, action)
        except HubserveError as error:
            message = in_cli_words(error.message)
            failures[action.name] = ("error", f"{action.kind} refused ({error.status} {error.type}): {message}")
    return failures


def _send(client: Client, action: Action) -> None:
    if action.kind == "create":
        client.create_endpoint(action.spec or {})
    elif action.kind == "update":
        client.update_endpoint(action.name, action.spec or {})
    elif action.kind == "delete":
        client.delete_endpoint(action.name)


def _wait_all(client: Client, pending: dict[str, str], timeout: float) -> dict[str, tuple[str, str | None]]:
    """Poll every changed endpoint until it serves, fails or is gone; a spinner shows their states and reasons.

    The server answers each change with the state it leads to (``updating``, ``initializing``), so
    the first poll already sees it.
    """
    results: dict[str, tuple[str, str | None]] = {}
    states: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    with output.console(stderr=True).status("Applying...") as spinner:
        while pending:
            for name, kind in list(pending.items()):
                try:
                    description = client.get_endpoint(name)
                except EndpointNotFound:
                    if kind == "delete":
                        results[name] = ("deleted", None)
                        pending.pop(name)
                        continue
                    raise
                state = str(description.get("state"))
                reason = description.get("reason")
                states[name] = f"{state} ({in_cli_words(reason)})" if isinstance(reason, str) and reason else state
                if kind != "delete" and state in READY_STATES:
                    results[name] = (state, None)
                elif state in FAILED_STATES:
                    results[name] = (state, in_cli_words(reason) if isinstance(reason, str) else reason)
                else:
                    continue
                pending.pop(name)
            spinner.update("Waiting: " + ", ".join(f"{name} {states.get(name, '?')}" for name in pending))
            if pending and time.monotonic() >= deadline:
                for name in pending:
                    results[name] = ("timeout", f"still {states.get(name, '?')} after {timeout:g}s")
                break
            if pending:
                time.sleep(0.5)
    return results


def _report(as_json: bool, the_plan: Plan, results: dict[str, tuple[str, str | None]]) -> bool:
    """Print each changed endpoint's outcome; True when any failed."""
    rows: list[dict[str, Any]] = []
    for action in the_plan.actions:
        if action.kind == "unchanged":
            continue
        state, reason = results.get(action.name, ("sent", None))
        rows.append({"name": action.name, "action": action.kind, "state": state, "reason": reason,
                     "ok": state not in (*FAILED_STATES, "error", "timeout")})  # fmt: skip
    if as_json:
        output.print_json({"plan": the_plan.to_json(), "results": rows})
    else:
        out = output.console()
        for row in rows:
            line = Text("ok   " if row["ok"] else "FAIL ", style="green" if row["ok"] else "bold red")
            line.append(f"{row['action']} {row['name']}: {row['state']}")
            if row["reason"]:
                line.append(f": {row['reason']}")
            out.print(line)
    return any(not row["ok"] for row in rows)
