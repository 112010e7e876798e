"""`hubserve invoke NAME DATA`: one request to an endpoint, its JSON answer on stdout.

DATA is JSON, ``@file`` or ``-`` (stdin). In the Hugging Face shape (default) a JSON
object is sent as is and anything else becomes ``{"inputs": ...}``, so
``hubserve invoke sst2 "I love it"`` works. ``--sagemaker`` sends the bytes as they
are to the SageMaker route. ``--verbose`` adds the latency headers on stderr, so
stdout stays parseable. ``--stream`` asks for server-sent events and prints each token's text as it
arrives (``--json``: each event's data as one JSON line).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from hubserve.cli import output
from hubserve.cli.common import JsonOption, TokenOption, UrlOption, cli_errors, make_client, want_json
from hubserve.cli.specs import SpecFileError
from hubserve.sdk.client import Client, Invocation


@cli_errors
def invoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Endpoint name.", show_default=False)],
    data: Annotated[
        str | None,
        typer.Argument(help="""Request body: JSON such as '{"inputs": "..."}', @file or - for stdin.""", show_default=False),
    ] = None,
    data_option: Annotated[
        str | None, typer.Option("--data", "-d", help="Same as DATA (curl style: -d @file.json).", show_default=False)
    ] = None,
    sagemaker: Annotated[
        bool, typer.Option("--sagemaker", help="Use the SageMaker runtime route (/invocations).")
    ] = False,
    content_type: Annotated[
        str | None, typer.Option("--content-type", help="Content-Type of DATA with --sagemaker.", show_default=False)
    ] = None,
    accept: Annotated[str | None, typer.Option("--accept", help="Accept header.", show_default=False)] = None,
    target_model: Annotated[
        str | None,
        typer.Option("--target-model", "-m", help="The model of a multi-model endpoint (SageMaker's TargetModel).",
                     show_default=False),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also print status, latencies and cold start (stderr).")
    ] = False,
    stream: Annotated[
        bool,
        typer.Option("--stream", help="Print tokens as they are generated (server-sent events; --json: one per line)."),
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Send one request to an endpoint and print its JSON answer."""
    if data is not None and data_option is not None:
        raise typer.BadParameter("give the body once: as DATA or with -d, not both")
    if stream and sagemaker:
        raise typer.BadParameter("--stream uses the Hugging Face route; drop --sagemaker")
    raw = _read_body(data if data is not None else data_option)
    if stream:
        with make_client(ctx, url, token) as client:
            _print_stream(client, name, _hf_payload(raw), as_json=want_json(ctx, json_), verbose=verbose,
                          target_model=target_model)  # fmt: skip
        return
    with make_client(ctx, url, token) as client:
        if sagemaker:
            result = client.invoke(
                name, raw, dialect="sagemaker", content_type=content_type or _guess_type(raw), accept=accept,
                target_model=target_model,
            )
        else:
            result = client.invoke(name, _hf_payload(raw), dialect="hf", accept=accept, target_model=target_model)
    if verbose:
        _print_timing(result)
    if want_json(ctx, json_):
        output.print_json(
            {
                "status": result.status,
                "model_latency_ms": result.model_latency_ms,
                "overhead_latency_ms": result.overhead_latency_ms,
                "cold_start": result.cold_start,
                "body": result.body,
            }
        )
    elif isinstance(result.body, bytes):
        sys.stdout.flush()
        typer.echo(result.body, nl=False)
    else:
        output.print_json(result.body)


def _print_stream(
    client: Client, name: str, payload: Any, *, as_json: bool, verbose: bool, target_model: str | None = None
) -> None:
    """Each event as it arrives, flushed: the token's text (a newline at the end), or JSON lines."""
    started = time.perf_counter()
    first_ms: float | None = None
    events = 0
    ended = False
    try:
        for event in client.stream(name, payload, target_model=target_model):
            if first_ms is None:
                first_ms = (time.perf_counter() - started) * 1000.0
            events += 1
            if as_json:
                sys.stdout.write(json.dumps(event.data) + "\n")
            else:
                sys.stdout.write(event.text)
            sys.stdout.flush()
        ended = True
    finally:
        if not as_json and events:
            sys.stdout.write("\n")
            sys.stdout.flush()
        if verbose and events:
            total_ms = (time.perf_counter() - started) * 1000.0
            typer.echo(
                f"first event: {first_ms or 0.0:.1f} ms  events: {events}  total: {total_ms:.1f} ms"
                + ("" if ended else "  (cut short)"),
                err=True,
            )


def _read_body(source: str | None) -> bytes:
    if source is None or source == "-":
        body = b"" if source is None and sys.stdin.isatty() else _stdin_bytes()
        if not body.strip():
            raise typer.BadParameter("missing the request body: DATA, -d @file.json or - for stdin")
        return body
    if source.startswith("@"):
        try:
            return Path(source[1:]).read_bytes()
        except OSError as exc:
            raise SpecFileError(f"cannot read {source[1:]}: {exc.strerror or exc}") from exc
    return source.encode()


def _stdin_bytes() -> bytes:
    stream = sys.stdin
    return stream.buffer.read() if hasattr(stream, "buffer") else stream.read().encode()


def _hf_payload(raw: bytes) -> Any:
    """JSON when it parses (objects go as is, the client wraps the rest); else plain text inputs."""
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text.rstrip("\n")


def _guess_type(raw: bytes) -> str:
    try:
        json.loads(raw)
    except ValueError:
        return "text/plain"
    return "application/json"


def _print_timing(result: Invocation) -> None:
    typer.echo(
        f"status: {result.status}  model-latency: {result.model_latency_ms:g} ms  "
        f"overhead-latency: {result.overhead_latency_ms:g} ms  cold-start: {str(result.cold_start).lower()}",
        err=True,
    )
