"""`hubserve bench NAME|URL`: an `ab` for endpoints, built in.

The requests come from a separate process (``hubserve.loadtest``); this module resolves the
target, reads the body, and prints what came back: counts, failures by status, throughput,
latency mean ± std and percentiles, hubserve's model/overhead split and cold starts, and a
histogram. NAME means ``{url}/endpoints/NAME`` on the configured server; a URL is used as is.
Without --data, a NAME gets its task's example body (``hubserve.tasks.TASK_EXAMPLES``), so the
run measures answers rather than 400s; a run with failures prints the first one's message and
exits 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table
from rich.text import Text

from hubserve.cli import output
from hubserve.cli.common import JsonOption, TokenOption, UrlOption, fail, format_error, globals_of, want_json
from hubserve.cli.hints import in_cli_words
from hubserve.errors import EndpointNotFound, HubserveError
from hubserve.loadtest.driver import Plan
from hubserve.loadtest.runner import LoadTestError, run_in_child
from hubserve.loadtest.stats import summarise
from hubserve.sdk.client import DEFAULT_URL, Client
from hubserve.tasks import TASK_EXAMPLES

DEFAULT_BODY = json.dumps(TASK_EXAMPLES["text-classification"]).encode()
DEFAULT_REQUESTS = 100
_BAR_WIDTH = 40


def bench(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="Endpoint name on the server, or a full http(s) URL.", show_default=False)],
    requests: Annotated[
        int | None,
        typer.Option("--requests", "-n", min=1, help=f"Requests to send [default: {DEFAULT_REQUESTS}, or no count bound with --duration].", show_default=False),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Connections: requests in flight at once (closed loop), or at most (--rate).")
    ] = 1,
    duration: Annotated[
        float | None, typer.Option("--duration", "-t", min=0.0, help="Stop starting requests after this many seconds.", show_default=False)
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", "-d", help="""Body, sent as is: JSON such as '{"inputs": "..."}', @file or - for stdin [default: an example of the endpoint's task].""", show_default=False),
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", min=0.0, help="Open loop: R arrivals a second, whatever the answers take.", show_default=False)
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=0.001, help="Seconds one request may take before it counts as failed.")] = 60.0,
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="'Name: value' added to every request; repeatable.", show_default=False)
    ] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Load-test an endpoint from a separate process and print ab-style latency figures."""
    base_url = url or globals_of(ctx).url or DEFAULT_URL
    address = resolve_target(target, base_url)
    body = _read_body(data) if data is not None else example_body(target, base_url, token or globals_of(ctx).token)
    plan = Plan(
        url=address,
        body=body,
        concurrency=concurrency,
        requests=requests if requests is not None else (0 if duration else DEFAULT_REQUESTS),
        duration=duration or 0.0,
        rate=rate or 0.0,
        timeout=timeout,
        headers=_with_token(_headers(header or []), token or globals_of(ctx).token),
    )
    as_json = want_json(ctx, json_)
    try:
        if as_json or not sys.stderr.isatty():
            results = run_in_child(plan)
        else:
            with output.console(stderr=True).status(f"Sending to {address} ..."):
                results = run_in_child(plan)
    except LoadTestError as error:
        raise fail(str(error)) from None
    settings = {"concurrency": plan.concurrency, "rate": plan.rate or None,
                "max_requests": plan.requests or None, "max_duration_s": plan.duration or None}  # fmt: skip
    report = summarise(results, address, settings)
    if as_json:
        output.print_json(report)
    else:
        print_report(report)
    first = report["first_failure"]
    if first:  # say why, not only how often, and make scripts see it
        said = f"{first['status']}: " if first["status"] else "no answer: "
        typer.echo(
            f"Error: {report['failed']} of {report['requests']} requests failed; the first: {said}"
            f"{in_cli_words(first['message'])}",
            err=True,
        )
        raise typer.Exit(1)


def _with_token(headers: dict[str, str], token: str | None) -> dict[str, str]:
    """The bench sends the CLI's token as a bearer token, as every client must on a protected endpoint."""
    if token and not any(name.lower() == "authorization" for name in headers):
        return {**headers, "Authorization": f"Bearer {token}"}
    return headers


def example_body(target: str, base_url: str, token: str | None) -> bytes:
    """The example body of the endpoint's task (text-classification's for a URL, or when the
    server cannot say); an endpoint that does not exist is an error before any load is sent."""
    if target.startswith(("http://", "https://")):
        return DEFAULT_BODY
    try:
        with Client(url=base_url, token=token or "") as client:
            model = client.get_endpoint(target).get("model") or {}
    except EndpointNotFound as error:
        typer.echo(format_error(error), err=True)
        raise typer.Exit(1) from None
    except HubserveError:
        return DEFAULT_BODY  # unreachable or refused: the run itself will say so
    example = TASK_EXAMPLES.get(str(model.get("task")))
    return json.dumps(example).encode() if example else DEFAULT_BODY


def resolve_target(target: str, base_url: str) -> str:
    """A full URL as is; a name as the endpoint's invocation URL on ``base_url``."""
    if target.startswith(("http://", "https://")):
        return target
    return f"{base_url.rstrip('/')}/endpoints/{quote(target, safe='')}"


def _read_body(source: str | None) -> bytes:
    if source is None:
        return DEFAULT_BODY
    if source == "-":
        return sys.stdin.buffer.read()
    if source.startswith("@"):
        try:
            return Path(source[1:]).read_bytes()
        except OSError as exc:
            raise fail(f"cannot read {source[1:]}: {exc.strerror or exc}") from None
    return source.encode()


def _headers(items: list[str]) -> dict[str, str]:
    headers = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise fail(f"--header wants 'Name: value' (got '{item}')")
        headers[name.strip()] = value.strip()
    return headers


# -- printing -----------------------------------------------------------------------------------


def print_report(report: dict[str, Any]) -> None:
    console = output.console()
    mode = f"open loop at {report['rate']:g} req/s, at most {report['concurrency']} in flight" if report["rate"] else f"concurrency {report['concurrency']}"
    console.print(f"[bold]{report['target']}[/]  ({mode})")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("Requests", f"{report['requests']} sent, {report['succeeded']} succeeded, {report['failed']} failed")
    grid.add_row("Statuses", ", ".join(f"{code}: {n}" for code, n in report["statuses"].items()) or "-")
    if report["failed"]:
        failures = [f"{code}: {n}" for code, n in report["failures_by_status"].items()]
        failures += [f"{kind} (no answer): {n}" for kind, n in report["errors"].items()]
        grid.add_row("Failures", Text(", ".join(failures), style="red"))
        first = report["first_failure"] or {}
        grid.add_row("First failure", Text(in_cli_words(str(first.get("message", "-"))), style="red"))
    grid.add_row("Time taken", f"{report['wall_s']:.3f} s")
    grid.add_row("Throughput", f"{report['throughput_rps']:.1f} req/s")
    latency = report["latency_ms"]
    if latency:
        grid.add_row("Latency", f"{latency['mean']:.2f} ± {latency['std']:.2f} ms (mean ± std)")
    if report["hubserve"]:
        grid.add_row("Cold starts", str(report["cold_starts"]))
    grid.add_row("Client CPU", f"{report['client_cpu_s']:.2f} s")
    console.print(grid)
    if latency:
        console.print()
        console.print(_percentiles(report))
        console.print()
        console.print(_histogram(report["histogram"]))


def _percentiles(report: dict[str, Any]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ms")
    for column in ("mean", "std", "min", "p50", "p90", "p99", "max"):
        table.add_column(column, justify="right")
    rows = [("total", report["latency_ms"]), ("model", report["model_latency_ms"]), ("overhead", report["overhead_latency_ms"])]
    for name, values in rows:
        if values:
            table.add_row(name, *(f"{values[k]:.2f}" for k in ("mean", "std", "min", "p50", "p90", "p99", "max")))
    return table


def _histogram(bins: list[dict[str, float]]) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False, title="latency histogram (ms)", title_justify="left")
    table.add_column(justify="right", no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(justify="right")
    top = max((b["count"] for b in bins), default=0) or 1
    for b in bins:
        bar = "█" * round(b["count"] / top * _BAR_WIDTH) or ("▏" if b["count"] else "")
        table.add_row(f"{b['low_ms']:.2f} – {b['high_ms']:.2f}", Text(bar, style="cyan"), str(int(b["count"])))
    return table
