"""`hubserve cost`: what a model costs as serverless against always-on instances.

Two questions, one command:
- a what-if from latencies: ``--latency-ms 286 --memory-mb 4096 --requests-per-month 1e6``
  (repeat --latency-ms with --label per model, or ``--preset seed``), with the break-even
  and, with ``--plot FILE``, the seed's Figure 1;
- what an endpoint's real traffic of a window cost: ``--endpoint NAME --window 1h``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hubserve.cli import output
from hubserve.cli.common import JsonOption, TokenOption, UrlOption, cli_errors, fail, make_client, want_json
from hubserve.cost.model import Comparison, Scenario, UsageCost, compare, price_usage
from hubserve.cost.money import amount, price, price_places
from hubserve.cost.presets import PRESETS
from hubserve.cost.pricing import Pricing, PricingError, load_pricing
from hubserve.cost.usage import parse_window, usage_from_metrics
from hubserve.errors import HubserveError
from hubserve.sdk.client import Client

DEFAULT_MEMORY_MB = 4096


@cli_errors
def cost(
    ctx: typer.Context,
    latency_ms: Annotated[
        list[str] | None,
        typer.Option("--latency-ms", help="Billed ms of one request (model + overhead latency); repeatable.", show_default=False),
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", help="Name of each --latency-ms, in order.", show_default=False)
    ] = None,
    memory_mb: Annotated[
        list[int] | None,
        typer.Option("--memory-mb", help=f"Serverless memory size: one for all, or one per --latency-ms [default: {DEFAULT_MEMORY_MB}; --endpoint: its own].", show_default=False),
    ] = None,
    preset: Annotated[
        str | None, typer.Option("--preset", help="Built-in models: 'seed' (the SageMaker article's five).", show_default=False)
    ] = None,
    requests_per_month: Annotated[
        str, typer.Option("--requests-per-month", help="Monthly traffic to price, e.g. 1e6.")
    ] = "1e6",
    bytes_per_request: Annotated[
        int, typer.Option("--bytes-per-request", help="Request + response bytes, for the data-processed charge.")
    ] = 0,
    instance: Annotated[
        list[str] | None,
        typer.Option("--instance", help="Instances to compare (repeatable) [default: all priced ones; the plot: the baseline].", show_default=False),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write the cost chart (Figure 1) to this .png or .svg.", show_default=False)
    ] = None,
    pricing_file: Annotated[
        str | None,
        typer.Option("--pricing", help="Your price list (YAML, merged over the defaults) [default: $HUBSERVE_PRICING, ~/.hubserve/pricing.yaml].", show_default=False),
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="Price this endpoint's real traffic instead.", show_default=False)
    ] = None,
    window: Annotated[str, typer.Option("--window", help="With --endpoint: how far back, e.g. 15m, 1h, 1d.")] = "1h",
    url: UrlOption = None,
    token: TokenOption = None,
    json_: JsonOption = False,
) -> None:
    """Serverless vs always-on cost: per request, per month, break-even, Figure 1; or an endpoint's real traffic."""
    try:
        pricing = load_pricing(pricing_file)
        for name in instance or ():
            pricing.instance(name)
    except PricingError as error:
        raise fail(str(error)) from None
    as_json = want_json(ctx, json_)
    if endpoint is not None:
        if latency_ms or preset or plot:
            raise fail("--endpoint prices real traffic; leave out --latency-ms, --preset and --plot")
        _endpoint_cost(ctx, pricing, endpoint, window, memory_mb, instance, url, token, as_json)
        return
    scenarios = _scenarios(latency_ms, label, memory_mb, preset, bytes_per_request)
    volume = _decimal(requests_per_month, "--requests-per-month")
    try:
        comparisons = [compare(pricing, scenario, volume, instance) for scenario in scenarios]
    except PricingError as error:
        raise fail(str(error)) from None
    figure_path = None
    if plot is not None:
        from hubserve.cost.plot import write_plot

        try:
            write_plot(plot, pricing, scenarios, instance)
        except ValueError as error:
            raise fail(str(error)) from None
        figure_path = str(plot)
    if as_json:
        output.print_json(_comparisons_json(pricing, comparisons, figure_path))
        return
    _print_comparisons(pricing, comparisons)
    if figure_path:
        typer.echo(f"\nWrote {figure_path}")


# -- inputs -----------------------------------------------------------------------------------


def _scenarios(
    latencies: list[str] | None, labels: list[str] | None, memories: list[int] | None, preset: str | None, bytes_per_request: int
) -> list[Scenario]:
    if preset is not None:
        if preset not in PRESETS:
            raise fail(f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
        if latencies:
            raise fail("give --preset or --latency-ms, not both")
        return [Scenario(s.label, s.latency_ms, s.memory_mb, bytes_per_request) for s in PRESETS[preset]]
    if not latencies:
        raise fail("give --latency-ms (and --memory-mb), --preset seed, or --endpoint NAME")
    labels = labels or []
    memories = memories or [DEFAULT_MEMORY_MB]
    if len(labels) > len(latencies):
        raise fail(f"{len(labels)} --label for {len(latencies)} --latency-ms")
    if len(memories) not in (1, len(latencies)):
        raise fail(f"give one --memory-mb for all, or one per --latency-ms ({len(latencies)})")
    scenarios = []
    for index, text in enumerate(latencies):
        latency = _decimal(text, "--latency-ms")
        name = labels[index] if index < len(labels) else ""
        scenarios.append(Scenario(name, latency, memories[index if len(memories) > 1 else 0], bytes_per_request))
    return scenarios


def _decimal(text: str, flag: str) -> Decimal:
    try:
        value = Decimal(text.replace("_", "").replace(",", ""))
    except InvalidOperation:
        raise fail(f"{flag} must be a number (got '{text}')") from None
    if not value.is_finite() or value < 0:
        raise fail(f"{flag} must be a number of at least 0 (got '{text}')")
    return value


# -- what-if ------------------------------------------------------------------------------------


def _print_comparisons(pricing: Pricing, comparisons: list[Comparison]) -> None:
    console = output.console()
    baseline = pricing.baseline_instance
    for index, comparison in enumerate(comparisons):
        s = comparison.scenario
        if index:
            console.print()
        title = f"[bold]{s.label}[/]: serverless" if s.label else "[bold]Serverless[/]"
        console.print(f"{title}, {_plain(s.latency_ms)} ms at {s.memory_mb} MB ({price(comparison.price_per_second)} per second)")
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column(justify="right")
        grid.add_row("per request", price(comparison.per_request))  # the one price that needs fractions of a cent
        grid.add_row("per thousand", amount(comparison.per_thousand))
        grid.add_row("per million", amount(comparison.per_million))
        grid.add_row(f"at {count(comparison.requests_per_month)} requests/month", amount(comparison.serverless_per_month) + " per month")
        console.print(grid)
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("INSTANCE", "PROVIDER", "PER HOUR", "PER MONTH", "BREAK-EVEN REQ/MONTH", "CHEAPER AT THIS VOLUME"):
            table.add_column(column, justify="left" if column in ("INSTANCE", "PROVIDER", "CHEAPER AT THIS VOLUME") else "right")
        hourly_places = price_places(row.per_hour for row in comparison.instances)  # one column, one precision
        for row in comparison.instances:
            cheaper = "serverless" if comparison.serverless_per_month < row.per_month else row.name
            table.add_row(row.name, row.provider, price(row.per_hour, hourly_places), amount(row.per_month),
                          count(row.break_even_requests) if row.break_even_requests is not None else "never", cheaper)  # fmt: skip
        console.print(table)
        base = next((row for row in comparison.instances if row.name == baseline), None)
        if base is not None and base.break_even_requests is not None:
            per_second = base.break_even_requests / (pricing.hours_per_month * 3600)
            console.print(f"Break-even with {baseline} ({amount(base.per_month)}/month): "
                          f"{count(base.break_even_requests)} requests/month ({per_second:.2f} req/s on average); "
                          f"below it serverless is cheaper.")  # fmt: skip


def _comparisons_json(pricing: Pricing, comparisons: list[Comparison], plot: str | None) -> dict[str, Any]:
    return {
        "pricing": pricing.source,
        "currency": pricing.currency,
        "hours_per_month": float(pricing.hours_per_month),
        "baseline_instance": pricing.baseline_instance,
        "scenarios": [
            {
                "label": c.scenario.label,
                "latency_ms": float(c.scenario.latency_ms),
                "memory_mb": c.scenario.memory_mb,
                "bytes_per_request": c.scenario.bytes_per_request,
                "price_per_second": float(c.price_per_second),
                "per_request": float(c.per_request),
                "per_thousand": float(c.per_thousand),
                "per_million": float(c.per_million),
                "requests_per_month": float(c.requests_per_month),
                "serverless_per_month": float(c.serverless_per_month),
                "instances": [
                    {
                        "name": row.name,
                        "provider": row.provider,
                        "per_hour": float(row.per_hour),
                        "per_month": float(row.per_month),
                        "break_even_requests_per_month": None if row.break_even_requests is None else float(row.break_even_requests),
                        "cheaper": "serverless" if c.serverless_per_month < row.per_month else "instance",
                    }
                    for row in c.instances
                ],
            }
            for c in comparisons
        ],
        "plot": plot,
    }


# -- real traffic -------------------------------------------------------------------------------


def _endpoint_cost(
    ctx: typer.Context, pricing: Pricing, name: str, window: str, memory_mb: list[int] | None,
    instances: list[str] | None, url: str | None, token: str | None, as_json: bool,
) -> None:  # fmt: skip
    try:
        window_s = parse_window(window)
    except ValueError as error:
        raise fail(str(error)) from None
    with make_client(ctx, url, token) as client:
        description = client.get_endpoint(name)  # EndpointNotFound here, so a 404 below is the route
        metrics = fetch_metrics(client, name, window)
    if metrics.get("window_s"):
        window_s = Decimal(str(metrics["window_s"]))  # the window the server actually summed
    memory = memory_mb[0] if memory_mb else _serverless_memory(description)
    usage = usage_from_metrics(metrics, memory, window_s)
    try:
        priced = price_usage(pricing, usage)
    except PricingError as error:
        raise fail(str(error)) from None
    names = instances or list(pricing.instances)
    if as_json:
        output.print_json(_usage_json(name, window, priced, names))
        return
    _print_usage(name, window, priced, names)


def fetch_metrics(client: Client, name: str, window: str) -> dict[str, Any]:
    """GET /v1/endpoints/{name}/metrics?window=...; a 404 means this server has no metrics route yet."""
    try:
        return dict(client.get_metrics(name, window))
    except HubserveError as error:
        if error.status == 404:
            raise fail(
                f"this server has no per-endpoint metrics (GET /v1/endpoints/{name}/metrics answered 404), so "
                "--endpoint cannot price real traffic yet; price a what-if with --latency-ms and --memory-mb, "
                "e.g. from `hubserve bench` or `hubserve invoke -v`"
            ) from None
        raise


def _serverless_memory(description: dict[str, Any]) -> int:
    """The endpoint's own memory size; a dedicated one is priced at its instance memory, capped at serverless's 6144."""
    compute = description.get("compute") or {}
    if compute.get("type") == "serverless" and compute.get("memory_mb"):
        return int(compute["memory_mb"])
    from hubserve.spec import INSTANCE_SIZES, MEMORY_SIZES_MB

    wanted = INSTANCE_SIZES.get(str(compute.get("instance")), {}).get("memory_mb", DEFAULT_MEMORY_MB)
    return min((size for size in MEMORY_SIZES_MB if size >= wanted), default=MEMORY_SIZES_MB[-1])


def _print_usage(name: str, window: str, priced: UsageCost, instances: list[str]) -> None:
    usage = priced.usage
    console = output.console()
    console.print(f"[bold]{name}[/], last {window}: {count(Decimal(usage.invocations))} invocations, "
                  f"{usage.billed_ms / 1000:,.3f} s billed (model + overhead), {usage.bytes_processed:,} bytes processed")  # fmt: skip
    per_request = priced.serverless_window / usage.invocations if usage.invocations else None
    console.print(f"As serverless at {usage.memory_mb} MB: {amount(priced.serverless_window)} for the window "
                  f"(compute {amount(priced.serverless_compute)}, data {amount(priced.serverless_data)}"
                  + (f"; {price(per_request)} per request" if per_request is not None else "") + "); "
                  f"{amount(priced.serverless_month)} a month at this rate ({count(priced.requests_per_month)} requests/month)")  # fmt: skip
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("INSTANCE (one replica)", "THIS WINDOW", "PER MONTH", "CHEAPER"):
        table.add_column(column, justify="left" if column.startswith("INSTANCE") or column == "CHEAPER" else "right")
    for instance in instances:
        window_cost, monthly = priced.instances[instance]
        table.add_row(instance, amount(window_cost), amount(monthly), "serverless" if priced.serverless_window < window_cost else instance)
    console.print(table)


def _usage_json(name: str, window: str, priced: UsageCost, instances: list[str]) -> dict[str, Any]:
    usage = priced.usage
    return {
        "endpoint": name,
        "window": window,
        "window_s": float(usage.window_s),
        "invocations": usage.invocations,
        "billed_ms": float(usage.billed_ms),
        "bytes_processed": usage.bytes_processed,
        "memory_mb": usage.memory_mb,
        "serverless": {
            "window": float(priced.serverless_window),
            "compute": float(priced.serverless_compute),
            "data": float(priced.serverless_data),
            "per_month": float(priced.serverless_month),
            "requests_per_month": float(priced.requests_per_month),
        },
        "instances": [
            {"name": n, "window": float(priced.instances[n][0]), "per_month": float(priced.instances[n][1])} for n in instances
        ],
    }


# -- formatting -------------------------------------------------------------------------------


def count(value: Decimal) -> str:
    return f"{value:,.0f}"


def _plain(value: Decimal) -> str:
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
