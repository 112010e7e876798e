"""`hubserve endpoint ...`: create, list, describe, update, delete, pause, resume, scale to zero, and the
models of a multi-model endpoint.

Each command is a few lines over ``hubserve.sdk.Client``; spec shaping lives in
``specs``, printing in ``output``, error lines in ``common``.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from hubserve.cli import output
from hubserve.cli.common import (
    JsonOption,
    TokenOption,
    UrlOption,
    cli_errors,
    confirm,
    make_client,
    want_json,
)
from hubserve.cli.hints import in_cli_words
from hubserve.cli.specs import SpecFlags, load_spec_file, patch_from_flags, spec_from_flags
from hubserve.sdk.client import Client

app = typer.Typer(
    name="endpoint",
    help="Create, inspect, change and remove endpoints.",
    no_args_is_help=True,
)

NameArg = Annotated[str, typer.Argument(help="Endpoint name.", show_default=False)]
FileOption = Annotated[
    str | None,
    typer.Option("--file", "-f", help="Spec file, YAML or JSON ('-' reads stdin).", show_default=False),
]
WaitOption = Annotated[bool, typer.Option("--wait", help="Wait until the endpoint is ready (running or scaled to zero).")]
PauseWaitOption = Annotated[bool, typer.Option("--wait", help="Wait until the endpoint is paused (its replicas stopped).")]
ZeroWaitOption = Annotated[bool, typer.Option("--wait", help="Wait until every replica has stopped (scaled to zero).")]
WaitTimeoutOption = Annotated[float, typer.Option("--timeout", help="Seconds --wait waits before giving up.")]

READY_STATES = ("running", "scaledToZero")  # both serve requests; scaledToZero cold-starts on the next one

# spec-shaping flags shared by create and update
ModelFlag = Annotated[
    str | None, typer.Option("--model", help="Local folder or Hub repo id.", show_default=False)
]
RevisionFlag = Annotated[str | None, typer.Option("--revision", help="Hub branch, tag or commit.", show_default=False)]
TaskFlag = Annotated[
    str | None, typer.Option("--task", help="e.g. text-classification (inferred when omitted).", show_default=False)
]
ComputeFlag = Annotated[
    bool | None,
    typer.Option("--serverless/--dedicated", help="Compute type (create defaults to serverless).", show_default=False),
]
MemoryFlag = Annotated[
    int | None, typer.Option("--memory-mb", help="Serverless memory: 1024..6144 in steps of 1024.", show_default=False)
]
ConcurrencyFlag = Annotated[
    int | None, typer.Option("--max-concurrency", help="Serverless concurrent requests, 1..200.", show_default=False)
]
InstanceFlag = Annotated[
    str | None, typer.Option("--instance", help="Dedicated size, e.g. cpu-small.", show_default=False)
]
MinReplicasFlag = Annotated[
    int | None, typer.Option("--min-replicas", help="Dedicated: replicas kept (0 scales to zero).", show_default=False)
]
MaxReplicasFlag = Annotated[int | None, typer.Option("--max-replicas", help="Dedicated: replica ceiling.", show_default=False)]
EnvFlag = Annotated[
    list[str] | None, typer.Option("--env", help="KEY=VALUE for the replicas; repeatable.", show_default=False)
]
MultiModelFlag = Annotated[
    bool | None,
    typer.Option("--multi-model/--single-model",
                 help="The model is a folder (or s3:// prefix, or registry://GROUP) of models, each named per request.",
                 show_default=False),
]
CustomCodeFlag = Annotated[
    bool | None,
    typer.Option("--custom-code/--no-custom-code", help="Run the model's handler.py / code/inference.py.", show_default=False),
]

InvocationTimeoutFlag = Annotated[
    int | None,
    typer.Option("--invocation-timeout", help="Seconds one request may run (1..3600; default 60); past it: 504 and "
                 "the replica is replaced.", show_default=False),
]


@app.command("create")
@cli_errors
def create(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Endpoint name (overrides the file's).", show_default=False)] = None,
    file: FileOption = None,
    model: ModelFlag = None,
    revision: RevisionFlag = None,
    task: TaskFlag = None,
    serverless: ComputeFlag = None,
    memory_mb: MemoryFlag = None,
    max_concurrency: ConcurrencyFlag = None,
    instance: InstanceFlag = None,
    min_replicas: MinReplicasFlag = None,
    max_replicas: MaxReplicasFlag = None,
    env: EnvFlag = None,
    custom_code: CustomCodeFlag = None,
    invocation_timeout: InvocationTimeoutFlag = None,
    multi_model: MultiModelFlag = None,
    wait: WaitOption = False,
    timeout: WaitTimeoutOption = 600.0,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Create an endpoint from a spec file (-f) or from flags; flags override the file."""
    flags = SpecFlags(
        model, revision, task, serverless, memory_mb, max_concurrency,
        instance, min_replicas, max_replicas, env or [], custom_code, invocation_timeout, multi_model,
    )  # fmt: skip
    base = load_spec_file(file) if file else None
    spec = spec_from_flags(name, flags, base)
    with make_client(ctx, url, token) as client:
        description = client.create_endpoint(spec)
        if wait:
            description = _wait(client, description["name"], timeout, READY_STATES)
    _show(ctx, json_, description)


@app.command("list")
@cli_errors
def list_(ctx: typer.Context, url: UrlOption = None, token: TokenOption = None, json_: JsonOption = False) -> None:
    """List endpoints: name, task, state, replicas ready/desired, compute, URL."""
    with make_client(ctx, url, token) as client:
        items = client.list_endpoints()
    if want_json(ctx, json_):
        output.print_json(items)
    else:
        output.print_endpoints(items)


@app.command("describe")
@cli_errors
def describe(
    ctx: typer.Context, name: NameArg, url: UrlOption = None, token: TokenOption = None, json_: JsonOption = False
) -> None:
    """Show one endpoint's spec, state, reason, URL and replicas."""
    with make_client(ctx, url, token) as client:
        description = client.get_endpoint(name)
    _show(ctx, json_, description)


@app.command("models")
@cli_errors
def models(
    ctx: typer.Context, name: NameArg, url: UrlOption = None, token: TokenOption = None, json_: JsonOption = False
) -> None:
    """A multi-model endpoint's models: state, replicas, size, last use, load time, hits/misses; memory per replica."""
    with make_client(ctx, url, token) as client:
        listing = client.endpoint_models(name)
    if want_json(ctx, json_):
        output.print_json(listing)
        return
    out = output.console()
    out.print(_memory_line(listing))
    if not listing.get("models"):
        out.print(Text(f"No models yet: add model folders under {listing.get('source') or 'its source'}."))
        return
    out.print(_models_table(listing.get("models") or [], time.time()))


@app.command("update")
@cli_errors
def update(
    ctx: typer.Context,
    name: NameArg,
    file: FileOption = None,
    model: ModelFlag = None,
    revision: RevisionFlag = None,
    task: TaskFlag = None,
    serverless: ComputeFlag = None,
    memory_mb: MemoryFlag = None,
    max_concurrency: ConcurrencyFlag = None,
    instance: InstanceFlag = None,
    min_replicas: MinReplicasFlag = None,
    max_replicas: MaxReplicasFlag = None,
    env: EnvFlag = None,
    custom_code: CustomCodeFlag = None,
    invocation_timeout: InvocationTimeoutFlag = None,
    wait: WaitOption = False,
    timeout: WaitTimeoutOption = 600.0,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Replace the spec with -f (PUT), or change only what the flags name (merge patch)."""
    flags = SpecFlags(
        model, revision, task, serverless, memory_mb, max_concurrency,
        instance, min_replicas, max_replicas, env or [], custom_code, invocation_timeout,
    )  # fmt: skip
    with make_client(ctx, url, token) as client:
        if file:
            spec = spec_from_flags(name, flags, load_spec_file(file))
            description = client.update_endpoint(name, spec)
        else:
            patch = patch_from_flags(flags)
            if not patch:
                raise typer.BadParameter("nothing to change: pass -f SPEC or flags such as --max-concurrency")
            description = client.patch_endpoint(name, patch)
        if wait:
            description = _wait(client, name, timeout, READY_STATES)
    _show(ctx, json_, description)


@app.command("delete")
@cli_errors
def delete(
    ctx: typer.Context,
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Delete an endpoint and stop its replicas."""
    if not yes:
        confirm(f"Delete endpoint '{name}'?", "delete", "deleting")
    with make_client(ctx, url, token) as client:
        description = client.delete_endpoint(name)
    _show_state(ctx, json_, description, name)


@app.command("pause")
@cli_errors
def pause(
    ctx: typer.Context,
    name: NameArg,
    wait: PauseWaitOption = False,
    timeout: WaitTimeoutOption = 600.0,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Stop an endpoint's replicas and refuse invocations until it is resumed."""
    with make_client(ctx, url, token) as client:
        description = client.pause_endpoint(name)
        if wait:
            description = _wait(client, name, timeout, ("paused",))
    _show_state(ctx, json_, description, name)


@app.command("scale-to-zero")
@cli_errors
def scale_to_zero(
    ctx: typer.Context,
    name: NameArg,
    wait: ZeroWaitOption = False,
    timeout: WaitTimeoutOption = 600.0,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Stop every replica now; the next invocation starts one again (a cold start)."""
    with make_client(ctx, url, token) as client:
        description = client.scale_to_zero(name)
        if wait:
            description = _wait(client, name, timeout, ("scaledToZero",))
    _show_state(ctx, json_, description, name)


@app.command("resume")
@cli_errors
def resume(
    ctx: typer.Context,
    name: NameArg,
    wait: WaitOption = False,
    timeout: WaitTimeoutOption = 600.0,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Bring a paused endpoint back."""
    with make_client(ctx, url, token) as client:
        description = client.resume_endpoint(name)
        if wait:
            description = _wait(client, name, timeout, READY_STATES)
    _show_state(ctx, json_, description, name)


def _wait(client: Client, name: str, timeout: float, states: tuple[str, ...]) -> dict[str, Any]:
    """Poll until one of ``states``, printing a line on stderr each time the state or reason changes.

    A first deployment or an update can take minutes (an ONNX export, quantization, timing
    runs); the server names the step in the reason (``exporting to ONNX (step 1 of 3)``), so each
    step stays on screen with the seconds it began at, under a spinner with the current one.
    """
    status_console = output.console(stderr=True)
    started = time.monotonic()
    seen: list[tuple[Any, Any]] = []
    with status_console.status(f"Waiting for '{name}'...") as spinner:

        def show(description: dict[str, Any]) -> None:
            state, reason = description.get("state"), description.get("reason")
            phase = f"{state}: {in_cli_words(str(reason))}" if reason else str(state)
            if not seen or seen[-1] != (state, reason):
                seen.append((state, reason))
                line = Text(f"{time.monotonic() - started:5.0f}s  ", style="dim")
                line.append(output.state_text(state))
                if reason:
                    line.append(f": {in_cli_words(str(reason))}")
                status_console.print(line)
            spinner.update(f"Waiting for '{name}' to be {' or '.join(states)}: {phase}")

        return client.wait_for(name, states, timeout=timeout, on_poll=show)


def _show(ctx: typer.Context, json_: bool, description: dict[str, Any]) -> None:
    if want_json(ctx, json_):
        output.print_json(description)
    else:
        output.print_description(description)


def _show_state(ctx: typer.Context, json_: bool, description: dict[str, Any], name: str) -> None:
    if want_json(ctx, json_):
        output.print_json(description)
    else:
        typer.echo(f"Endpoint '{description.get('name', name)}': {description.get('state', 'unknown')}")


MODEL_STATE_STYLES = {"loaded": "green", "loading": "yellow", "unloaded": "dim"}


def _memory_line(listing: dict[str, Any]) -> Text:
    """``Endpoint 'mme' (/models/root), memory used/budget per replica: r1 80.1/123.4 MB``; a replica with no
    budget (``models_memory_mb`` unset and none derived) shows its use alone."""
    line = Text(f"Endpoint '{listing.get('endpoint')}' ({listing.get('source')}), memory used/budget per replica: ")
    replicas = listing.get("replicas") or {}
    if not replicas:
        line.append("no replica running", style="dim")
    for index, (replica, memory) in enumerate(sorted(replicas.items())):
        used, budget = memory.get("used_mb"), memory.get("budget_mb")
        line.append(", " if index else "")
        line.append(f"{replica} ")
        line.append(f"{_mb(used)}/{_mb(budget)} MB" if budget else f"{_mb(used)} MB (no budget)", style="bold")
    return line


def _models_table(items: list[dict[str, Any]], now: float) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("MODEL", "STATE", "REPLICAS", "SIZE MB", "LAST USED", "LOAD TIME", "HITS/MISSES"):
        table.add_column(column, overflow="fold", justify="right" if column in ("SIZE MB", "LOAD TIME", "HITS/MISSES") else "left")
    for item in items:
        state = Text(str(item.get("state") or "-"), style=MODEL_STATE_STYLES.get(str(item.get("state")), ""))
        if item.get("available") is False:
            state.append(" (gone from the folder)", style="dim")
        load_s = item.get("load_s")
        table.add_row(
            str(item.get("name", "-")),
            state,
            ", ".join(item.get("replicas") or []) or "-",
            _mb(item.get("size_mb")),
            relative_time(item.get("last_used"), now),
            "-" if load_s is None else f"{load_s:.2f}s",
            f"{item.get('hits', 0)}/{item.get('misses', 0)}",
        )
    return table


def relative_time(epoch: float | None, now: float) -> str:
    """``12s ago``, ``5m ago``, ``3h ago``, ``2d ago``; ``-`` for never (a table cell reads faster than a date)."""
    if not epoch:
        return "-"
    ago = max(0.0, now - epoch)
    for unit, seconds in (("d", 86400), ("h", 3600), ("m", 60)):
        if ago >= seconds:
            return f"{int(ago // seconds)}{unit} ago"
    return f"{int(ago)}s ago"


def _mb(value: Any) -> str:
    return "-" if value is None else f"{float(value):.1f}"
