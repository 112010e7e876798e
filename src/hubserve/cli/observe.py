"""`hubserve endpoint metrics` and `logs`: what an endpoint did, from the server's own records."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.table import Table

from hubserve.cli import output
from hubserve.cli.common import JsonOption, TokenOption, UrlOption, cli_errors, make_client, want_json

NameArg = Annotated[str, typer.Argument(help="Endpoint name.", show_default=False)]
WindowOption = Annotated[str, typer.Option("--window", "-w", help="How far back: 60s, 5m, 1h (the most kept).")]
WatchOption = Annotated[bool, typer.Option("--watch", help="Refresh the table until Ctrl-C.")]
IntervalOption = Annotated[float, typer.Option("--interval", help="Seconds between refreshes with --watch.")]


@cli_errors
def metrics(
    ctx: typer.Context,
    name: NameArg,
    window: WindowOption = "1h",
    watch: WatchOption = False,
    interval: IntervalOption = 2.0,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Invocations, errors, latencies (model and overhead), cold starts, concurrency, memory and CPU."""
    with make_client(ctx, url, token) as client:
        if want_json(ctx, json_):
            output.print_json(client.get_metrics(name, window))
            return
        if not watch:
            output.console().print(metrics_view(client.get_metrics(name, window)))
            return
        with Live(metrics_view(client.get_metrics(name, window)), console=output.console(), auto_refresh=False) as live:
            try:
                while True:
                    time.sleep(interval)
                    live.update(metrics_view(client.get_metrics(name, window)), refresh=True)
            except KeyboardInterrupt:
                pass


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if value < 10 else f"{value:.1f}"


def metrics_view(m: dict[str, Any]) -> Group:
    """Two tables: counts and levels, then the latency distributions; a generative endpoint adds a third."""
    counts = Table(title=f"{m['endpoint']}: last {m['window']} (1-minute resolution)", show_header=False)
    counts.add_column("metric")
    counts.add_column("value", justify="right")
    concurrency = m["concurrent_executions"]
    memory = m["memory_mb"]
    limit = concurrency.get("max_concurrency")
    rows = [
        ("invocations", m["invocations"]),
        ("4xx errors", m["errors_4xx"]),
        ("5xx errors", m["errors_5xx"]),
        ("throttles", m["throttles"]),
        ("cold starts", m["cold_starts"]),
        ("concurrent executions (now / max)", f"{concurrency.get('current', '-')} / {concurrency['max']:g}"
         + (f" of {limit} ({concurrency.get('utilization', 0) * 100:.0f} %)" if limit else "")),
        ("held requests (now / max)", f"{m['held_requests'].get('current', '-')} / {m['held_requests']['max']:g}"),
        ("replicas (ready / starting / max)",
         f"{m['replicas'].get('ready', '-')} / {m['replicas'].get('starting', '-')} / {m['replicas']['max']:g}"),
        ("memory per replica, MB (max / limit)",
         f"{memory['max_per_replica']:g} / {memory.get('limit', '-')}"
         + (f" ({memory['utilization'] * 100:.0f} %)" if memory.get("utilization") is not None else "")),
        ("CPU, % of one core (avg / max)", f"{_ms(m['cpu_percent']['avg'])} / {_ms(m['cpu_percent']['max'])}"),
        ("bytes in / out", f"{m['bytes_in']} / {m['bytes_out']}"),
    ]  # fmt: skip
    for label, value in rows:
        counts.add_row(label, str(value))
    latency = Table(title="latency, ms")
    for column in ("", "count", "avg", "p50", "p90", "p99", "max"):
        latency.add_column(column, justify="left" if not column else "right")
    for label, key in (("model", "model_latency_ms"), ("overhead", "overhead_latency_ms"), ("model setup", "model_setup_time_ms")):
        d = m[key]
        latency.add_row(label, str(d["count"]), *(_ms(d[k]) for k in ("avg", "p50", "p90", "p99", "max")))
    generation = m.get("generation")
    if not generation:
        return Group(counts, latency)
    return Group(counts, latency, generation_view(generation))


def generation_view(g: dict[str, Any]) -> Group:
    """Time to first token and inter-token latency (ms), then tokens per second and the engines' levels."""
    latency = Table(title=f"generation: {g['streams']} streams, {g['generated_tokens']} tokens")
    for column in ("", "count", "avg", "p50", "p90", "p99", "max"):
        latency.add_column(column, justify="left" if not column else "right")
    for label, key in (("time to first token, ms", "time_to_first_token_ms"),
                       ("inter-token latency, ms", "inter_token_latency_ms")):  # fmt: skip
        d = g[key]
        latency.add_row(label, str(d["count"]), *(_ms(d[k]) for k in ("avg", "p50", "p90", "p99", "max")))
    levels = Table(show_header=False)
    levels.add_column("metric")
    levels.add_column("value", justify="right")
    rate = g["tokens_per_second"]
    levels.add_row("generated tokens/s (now / avg)", f"{_num(rate.get('current'))} / {_num(rate['avg'])}")
    for label, key in (("sequences running", "sequences_running"), ("sequences waiting", "sequences_waiting"),
                       ("batch size", "batch_size")):  # fmt: skip
        level = g[key]
        levels.add_row(f"{label} (now / avg / max)", f"{_num(level.get('current'))} / {_num(level['avg'])} / {_num(level['max'])}")
    return Group(latency, levels)


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:g}"


FollowOption = Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")]
TailOption = Annotated[int, typer.Option("--tail", "-n", help="How many of the latest lines to print first.")]
SinceOption = Annotated[
    str | None, typer.Option("--since", help="Only lines after this: a time or 30s / 5m / 2h.", show_default=False)
]
SourceOption = Annotated[
    str | None, typer.Option("--source", help="'hubserve' or one replica id.", show_default=False)
]


LATE_S = 10.0  # how late a line may reach the server and still be printed by --follow


def _before(stamp: str, seconds: float) -> str:
    """The log time ``seconds`` before ``stamp`` (both as the server writes them: ISO, UTC, milliseconds, Z)."""
    moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")) - dt.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@cli_errors
def logs(
    ctx: typer.Context,
    name: NameArg,
    follow: FollowOption = False,
    tail: TailOption = 200,
    since: SinceOption = None,
    source: SourceOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """The endpoint's replicas' output and hubserve's events and access lines, in time order."""
    as_json = want_json(ctx, json_)
    printed: set[tuple[str, str, str]] = set()  # lines at the boundary time come again on the next poll
    with make_client(ctx, url, token) as client:
        page = client.get_logs(name, since=since, tail=tail, source=source)
        while True:
            for line in page["lines"]:
                key = (line["time"], line["source"], line["message"])
                if key in printed:
                    continue
                printed.add(key)
                typer.echo(json.dumps(line) if as_json else f"{line['time']} {line['source']} {line['stream']}: {line['message']}")
            if not follow:
                return
            boundary = page.get("next_since")
            # Ask again from LATE_S before the newest line: a replica's line can reach the server after newer
            # lines (on Ray, log bytes are copied from the nodes every 0.5 s), stamped with its own earlier time.
            since_again = _before(boundary, LATE_S) if boundary else boundary
            printed = {key for key in printed if since_again is None or key[0] >= since_again}
            try:
                time.sleep(1.0)
            except KeyboardInterrupt:
                return
            page = client.get_logs(name, since=since_again, tail=10_000, source=source)
