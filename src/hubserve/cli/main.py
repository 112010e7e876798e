"""The `hubserve` app: global options, --version, and the command groups.

Global --url/--token/--json set here apply to every client-side command (each
command also takes them, so they may follow the command name too).
"""

from __future__ import annotations

from typing import Annotated

import typer

from hubserve import __version__
from hubserve.cli import async_cmd, batch, endpoint, model, observe, token
from hubserve.cli.apply import apply, export, plan
from hubserve.cli.audit import audit
from hubserve.cli.bench import bench
from hubserve.cli.common import Globals
from hubserve.cli.cost import cost
from hubserve.cli.invoke import invoke
from hubserve.cli.serve import quickstart, serve
from hubserve.sdk.client import DEFAULT_URL

app = typer.Typer(
    name="hubserve",
    help="Serve Hugging Face models on your own machines: serverless or dedicated endpoints.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"hubserve {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Option("--url", envvar="HUBSERVE_URL", help="Server URL for client commands.")
    ] = DEFAULT_URL,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="HUBSERVE_TOKEN", help="Bearer token of the management API.", show_default=False),
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print raw JSON on every command.")] = False,
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Serve Hugging Face models on your own machines: serverless or dedicated endpoints."""
    ctx.obj = Globals(url=url, token=token, json=json_)


endpoint.app.command("metrics")(observe.metrics)
endpoint.app.command("logs")(observe.logs)
app.add_typer(endpoint.app, name="endpoint")
app.add_typer(async_cmd.app, name="async")
app.add_typer(batch.app, name="batch")
app.add_typer(token.app, name="token")
app.add_typer(model.app, name="model")
app.command("audit")(audit)
app.command("invoke")(invoke)
app.command("serve")(serve)
app.command("quickstart")(quickstart)
app.command("bench")(bench)
app.command("cost")(cost)
app.command("apply")(apply)
app.command("plan")(plan)
app.command("export")(export)
