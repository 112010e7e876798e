"""How the CLI prints: rich tables and key/value views for people, plain JSON for scripts.

JSON goes out through ``typer.echo`` unstyled and unwrapped so it always parses;
tables go through a rich Console made per call (so it writes to whatever stdout
is at that moment) that does not wrap at 80 columns when stdout is not a terminal.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hubserve.cli.hints import in_cli_words

STATE_STYLES = {
    "running": "green",
    "scaledToZero": "cyan",
    "pending": "yellow",
    "initializing": "yellow",
    "updating": "yellow",
    "pausing": "yellow",
    "paused": "dim",
    "deleting": "magenta",
    "failed": "bold red",
}

# describe's order; anything else the server adds is shown after these
_DESCRIBE_KEYS = (
    "name", "state", "reason", "url", "model", "compute", "replicas",
    "env", "custom_code", "created_at", "updated_at", "notes",
)  # fmt: skip


def console(stderr: bool = False) -> Console:
    file = sys.stderr if stderr else sys.stdout
    is_tty = bool(getattr(file, "isatty", lambda: False)())
    return Console(file=file, width=None if is_tty else 200, highlight=False)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default))


def state_text(state: Any) -> Text:
    return Text(str(state or "-"), style=STATE_STYLES.get(str(state), ""))


def compute_summary(compute: Any) -> str:
    """A short word for a table cell: 'serverless 2048 MB' or 'dedicated cpu-small 1..2'."""
    if not isinstance(compute, dict):
        return "-"
    if compute.get("type") == "dedicated":
        return f"dedicated {compute.get('instance', '?')} {compute.get('min_replicas', '?')}..{compute.get('max_replicas', '?')}"
    if compute.get("type") == "serverless":
        return f"serverless {compute.get('memory_mb', '?')} MB"
    return str(compute.get("type", "-"))


def replicas_summary(replicas: Any) -> str:
    if not isinstance(replicas, dict):
        return "-"
    return f"{replicas.get('ready', 0)}/{replicas.get('desired', 0)}"


def endpoints_table(items: Iterable[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("NAME", "TASK", "STATE", "REPLICAS", "COMPUTE", "URL"):
        table.add_column(column, overflow="fold")
    for item in items:
        model = item.get("model")
        if not isinstance(model, dict):
            model = {}
        table.add_row(
            str(item.get("name", "-")),
            str(model.get("task") or "-"),
            state_text(item.get("state")),
            replicas_summary(item.get("replicas")),
            compute_summary(item.get("compute")),
            str(item.get("url") or "-"),
        )
    return table


def print_endpoints(items: list[dict[str, Any]]) -> None:
    if not items:
        typer.echo("No endpoints yet. Create one with `hubserve endpoint create NAME --model PATH_OR_REPO`.")
        return
    console().print(endpoints_table(items))


def description_view(description: dict[str, Any]) -> Table:
    """Key/value rows for one endpoint; nested mappings become dotted keys (model.source ...)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    keys = [k for k in _DESCRIBE_KEYS if k in description]
    keys += [k for k in description if k not in _DESCRIBE_KEYS]
    for key in keys:
        value = description[key]
        if key == "state":
            grid.add_row(key, state_text(value))
        elif key == "replicas":
            grid.add_row("replicas (ready/desired)", replicas_summary(value))
        elif key == "env":
            grid.add_row(key, ", ".join(f"{k}={v}" for k, v in (value or {}).items()) or "-")
        elif key == "notes":
            for index, note in enumerate(value or []):
                grid.add_row("notes" if index == 0 else "", Text(in_cli_words(str(note))))
        elif isinstance(value, dict):
            for sub, sub_value in value.items():
                grid.add_row(f"{key}.{sub}", _scalar(sub_value))
        elif key == "reason" and value is None:
            continue
        elif key == "reason":
            grid.add_row(key, Text(in_cli_words(str(value))))
        else:
            grid.add_row(key, _scalar(value))
    return grid


def print_description(description: dict[str, Any]) -> None:
    console().print(description_view(description))


def _scalar(value: Any) -> Text:
    if value is None:
        return Text("-")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, (dict, list)):
        return Text(json.dumps(value, ensure_ascii=False))
    return Text(str(value))


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
