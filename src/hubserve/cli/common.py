"""What every client-side command shares: the --url/--token/--json options, the
client they build, and the one place that turns an error into one line and exit 1.

The global options live on the app callback (which also reads HUBSERVE_URL and
HUBSERVE_TOKEN); each command repeats them without the env var so that
``hubserve endpoint list --url X`` works too and an explicit flag always wins.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer

from hubserve.cli.hints import in_cli_words
from hubserve.cli.specs import SpecFileError
from hubserve.errors import HubserveError
from hubserve.sdk.client import DEFAULT_URL, Client, ClientError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Globals:
    """Values of the app-level options, handed to commands through ``ctx.obj``."""

    url: str | None = None
    token: str | None = None
    json: bool = False


UrlOption = Annotated[
    str | None,
    typer.Option("--url", help=f"Server URL (default: the global --url, $HUBSERVE_URL or {DEFAULT_URL}).", show_default=False),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", help="Bearer token of the management API (default: the global --token or $HUBSERVE_TOKEN).", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print raw JSON instead of tables.")]


def globals_of(ctx: typer.Context) -> Globals:
    obj = ctx.obj
    return obj if isinstance(obj, Globals) else Globals()


def make_client(ctx: typer.Context, url: str | None, token: str | None) -> Client:
    """A Client from the command's flags, else the app's flags or env vars, else the defaults."""
    top = globals_of(ctx)
    return Client(url=url or top.url or DEFAULT_URL, token=token or top.token or "")


def want_json(ctx: typer.Context, flag: bool) -> bool:
    return flag or globals_of(ctx).json


def format_error(error: HubserveError) -> str:
    """One line: the status and type the server sent, its message (hints naming CLI commands, not
    REST routes), and each bad field."""
    text = in_cli_words(" ".join(error.message.split()))
    fields = [
        f"{d.get('field')}: {d.get('message')}" if d.get("field") else str(d.get("message"))
        for d in error.details or ()
        if isinstance(d, dict)
    ]
    missing = [f for f in fields if " ".join(f.split()) not in text]  # servers often summarise them already
    if missing:
        text = f"{text.rstrip('.:')}: {'; '.join(missing)}"
    if isinstance(error, ClientError):  # no HTTP answer: a status would be made up
        return f"Error: {text}"
    return f"Error ({error.status} {error.type}): {text}"


def fail(message: str) -> typer.Exit:
    """Print one error line to stderr and return the Exit(1) to raise."""
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(1)


def confirm(question: str, verb: str, doing: str) -> None:
    """Ask at a terminal, or fail naming ``--yes``: a script must never hang on a prompt nobody sees.

    An answer of no, Ctrl-C or end of input ends the line the prompt left open before the error,
    so the shell's next prompt starts on a line of its own.
    """
    if not sys.stdin.isatty():
        raise fail(f"not {doing}: stdin is not a terminal to confirm on; pass --yes to {verb} without asking")
    try:
        answer = typer.confirm(question, err=True)
    except typer.Abort:  # Ctrl-C or Ctrl-D at the prompt
        typer.echo("", err=True)
        answer = False
    if not answer:
        raise fail(f"not {doing}: not confirmed (pass --yes to {verb} without asking)")


def cli_errors(func: F) -> F:
    """Turn hubserve and spec-file errors into one stderr line and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HubserveError as error:
            typer.echo(format_error(error), err=True)
            raise typer.Exit(1) from None
        except SpecFileError as error:
            raise fail(str(error)) from None

    return wrapper  # type: ignore[return-value]
