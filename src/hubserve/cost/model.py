"""The cost arithmetic: serverless by the millisecond against instances by the hour.

Pure functions over a ``Pricing``; Decimals throughout so the seed's figures come out exact:
286 ms at 4096 MB is 0.286 s x $0.000080 = $0.00002288 a request, $22.88 a million.
Billed duration is the model plus overhead latency as measured, not rounded up per
invocation (SageMaker rounds each invocation up to the millisecond, which adds under 1 ms).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from hubserve.cost.pricing import Pricing

MS_PER_SECOND = Decimal(1000)
SECONDS_PER_HOUR = Decimal(3600)
BYTES_PER_GB = Decimal(1024**3)


@dataclass(frozen=True)
class Scenario:
    """One model on serverless: what a request takes and what memory it is billed at."""

    label: str
    latency_ms: Decimal  # model + overhead latency of one invocation
    memory_mb: int
    bytes_per_request: int = 0  # in + out, for the data-processed charge


@dataclass(frozen=True)
class InstanceRow:
    """One always-on instance against a scenario."""

    name: str
    provider: str
    per_hour: Decimal
    per_month: Decimal
    break_even_requests: Decimal | None  # requests a month where serverless costs as much; None: never


@dataclass(frozen=True)
class Comparison:
    """A scenario priced as serverless at a monthly volume, next to every instance."""

    scenario: Scenario
    requests_per_month: Decimal
    price_per_second: Decimal
    per_request: Decimal
    serverless_per_month: Decimal
    instances: list[InstanceRow] = field(default_factory=list)

    @property
    def per_thousand(self) -> Decimal:
        return self.per_request * 1000

    @property
    def per_million(self) -> Decimal:
        return self.per_request * 1_000_000


def per_request(pricing: Pricing, latency_ms: Decimal, memory_mb: int, bytes_per_request: int = 0) -> Decimal:
    """Serverless cost of one invocation: seconds x price per second at its memory, plus data."""
    compute = latency_ms / MS_PER_SECOND * pricing.serverless_per_second(memory_mb)
    return compute + data_cost(pricing, bytes_per_request)


def data_cost(pricing: Pricing, bytes_processed: int | Decimal) -> Decimal:
    return Decimal(bytes_processed) / BYTES_PER_GB * pricing.serverless.price_per_gb_processed


def break_even(instance_per_month: Decimal, cost_per_request: Decimal) -> Decimal | None:
    """Requests a month at which serverless costs what the always-on instance costs."""
    if cost_per_request <= 0:
        return None
    return instance_per_month / cost_per_request


def compare(pricing: Pricing, scenario: Scenario, requests_per_month: Decimal, instances: list[str] | None = None) -> Comparison:
    """The scenario as serverless at ``requests_per_month`` and each instance's month (all when None)."""
    cost = per_request(pricing, scenario.latency_ms, scenario.memory_mb, scenario.bytes_per_request)
    rows = []
    for name in instances if instances is not None else list(pricing.instances):
        monthly = pricing.per_month(name)
        rows.append(InstanceRow(name, pricing.instance(name).provider, pricing.per_hour(name), monthly, break_even(monthly, cost)))
    return Comparison(
        scenario=scenario,
        requests_per_month=requests_per_month,
        price_per_second=pricing.serverless_per_second(scenario.memory_mb),
        per_request=cost,
        serverless_per_month=cost * requests_per_month,
        instances=rows,
    )


# -- what real traffic cost -------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """An endpoint's traffic over a window, as the metrics record it."""

    invocations: int
    billed_ms: Decimal  # sum over invocations of model + overhead latency
    bytes_processed: int  # request and response bodies
    memory_mb: int  # the serverless memory size to price it at
    window_s: Decimal


@dataclass(frozen=True)
class UsageCost:
    """``Usage`` priced: for the window itself and extrapolated to a month at the same rate."""

    usage: Usage
    serverless_compute: Decimal
    serverless_data: Decimal
    instances: dict[str, tuple[Decimal, Decimal]]  # name -> (window, month) for one always-on replica
    windows_per_month: Decimal  # hours a month / hours in the window

    @property
    def serverless_window(self) -> Decimal:
        return self.serverless_compute + self.serverless_data

    @property
    def serverless_month(self) -> Decimal:
        return self.serverless_window * self.windows_per_month

    @property
    def requests_per_month(self) -> Decimal:
        return self.usage.invocations * self.windows_per_month


def price_usage(pricing: Pricing, usage: Usage) -> UsageCost:
    """What ``usage`` cost as serverless (billed ms x price per ms at its memory) and on each instance."""
    if usage.window_s <= 0:
        raise ValueError("the window must be longer than zero seconds")
    compute = usage.billed_ms / MS_PER_SECOND * pricing.serverless_per_second(usage.memory_mb)
    hours = usage.window_s / SECONDS_PER_HOUR
    instances = {name: (pricing.per_hour(name) * hours, pricing.per_month(name)) for name in pricing.instances}
    return UsageCost(
        usage=usage,
        serverless_compute=compute,
        serverless_data=data_cost(pricing, usage.bytes_processed),
        instances=instances,
        windows_per_month=pricing.hours_per_month / hours,
    )
