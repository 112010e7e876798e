"""`hubserve async invoke|get|list`: queue asynchronous inferences and follow them.

``invoke`` sends the payload (``--data`` JSON, ``@file`` or ``-``) or names it
(``--input-location``), prints the inference id and where the result will be, and with
``--wait`` polls until it is done (exit 1 when it failed or expired).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from hubserve.cli import output
from hubserve.cli.common import JsonOption, TokenOption, UrlOption, cli_errors, make_client, want_json
from hubserve.cli.invoke import _guess_type, _read_body

app = typer.Typer(help="Asynchronous inference: queue requests, results go to storage.", no_args_is_help=True)

EndpointArg = Annotated[str, typer.Argument(help="Endpoint name.", show_default=False)]


@app.command("invoke")
@cli_errors
def invoke(
    ctx: typer.Context,
    endpoint: EndpointArg,
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="Payload: JSON text, @file or - for stdin.", show_default=False)
    ] = None,
    input_location: Annotated[
        str | None,
        typer.Option("--input-location", help="Payload already in storage: a path under the server's roots, file:// or s3://.", show_default=False),
    ] = None,
    output_location: Annotated[
        str | None, typer.Option("--output-location", help="Folder or s3:// prefix for the result.", show_default=False)
    ] = None,
    content_type: Annotated[str | None, typer.Option("--content-type", help="Content type of the payload.", show_default=False)] = None,
    accept: Annotated[str | None, typer.Option("--accept", help="Accept type of the result.", show_default=False)] = None,
    inference_id: Annotated[
        str | None, typer.Option("--inference-id", help="Your own id (the same id again returns the first one).", show_default=False)
    ] = None,
    ttl: Annotated[int | None, typer.Option("--ttl", help="Seconds it may wait in the queue (default 21600).", show_default=False)] = None,
    timeout: Annotated[
        int | None, typer.Option("--timeout", help="Seconds the model may take (default 900, at most 3600).", show_default=False)
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it succeeded, failed or expired.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Queue one inference and print its id and output location."""
    if (data is None) == (input_location is None):
        raise typer.BadParameter("give the payload with --data or --input-location, exactly one of them")
    body = _read_body(data) if data is not None else None
    with make_client(ctx, url, token) as client:
        accepted = client.invoke_async(
            endpoint, body, input_location=input_location, output_location=output_location,
            content_type=content_type or (_guess_type(body) if body is not None else None), accept=accept,
            inference_id=inference_id, ttl_s=ttl, timeout_s=timeout,
        )  # fmt: skip
        result = client.wait_async_inference(endpoint, accepted["inferenceId"]) if wait else accepted
    _show(ctx, json_, result)
    if wait and result.get("status") != "succeeded":
        raise typer.Exit(1)


@app.command("get")
@cli_errors
def get(
    ctx: typer.Context,
    endpoint: EndpointArg,
    inference_id: Annotated[str, typer.Argument(help="Inference id.", show_default=False)],
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Show one inference: status, attempts, timestamps, output or failure location, error."""
    with make_client(ctx, url, token) as client:
        _show(ctx, json_, client.get_async_inference(endpoint, inference_id))


@app.command("list")
@cli_errors
def list_(
    ctx: typer.Context,
    endpoint: EndpointArg,
    status: Annotated[str | None, typer.Option("--status", help="Only this status.", show_default=False)] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, newest first.")] = 100,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """List an endpoint's async inferences, newest first."""
    with make_client(ctx, url, token) as client:
        items = client.list_async_inferences(endpoint, status, limit)
    if want_json(ctx, json_):
        output.print_json({"items": items})
        return
    if not items:
        typer.echo(f"No async inferences on '{endpoint}'" + (f" with status {status}." if status else "."))
        return
    for item in items:
        typer.echo(f"{item['inferenceId']}  {item['status']:<9}  {item['createdAt']}  {item.get('outputLocation') or '-'}")


def _show(ctx: typer.Context, json_: bool, inference: dict[str, Any]) -> None:
    if want_json(ctx, json_):
        output.print_json(inference)
    else:
        output.print_description(inference)
