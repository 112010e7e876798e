"""The seed's Figure 1: monthly cost against requests per month, serverless vs real-time.

One rising line per scenario (serverless cost grows with traffic), one flat line per
always-on instance; where they cross is the break-even, marked with a dot. The x axis is
logarithmic so a thousand and ten million requests fit one chart; the y axis is linear and
cut at a few times the dearest instance, so the crossings stay readable.
"""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from hubserve.cost.model import Scenario, break_even, per_request
from hubserve.cost.pricing import Pricing

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = (".png", ".svg")


def requests_range(pricing: Pricing, scenarios: list[Scenario], instances: list[str]) -> tuple[float, float]:
    """Whole decades from a tenth of the lowest break-even to ten times the highest."""
    points = [
        float(point)
        for scenario in scenarios
        for name in instances
        if (point := break_even(pricing.per_month(name), _cost(pricing, scenario))) is not None
    ]
    if not points:
        return 1e3, 1e7
    low = 10 ** math.floor(math.log10(max(min(points) / 10, 1)))
    high = 10 ** math.ceil(math.log10(max(points) * 10))
    return float(low), float(high)


def cost_figure(pricing: Pricing, scenarios: list[Scenario], instances: list[str] | None = None) -> Figure:
    """Build the chart (not saved); lines are labelled '<scenario> (serverless ...)' and '<instance> (real-time ...)'."""
    # imported here: the CLI's other paths never pay for matplotlib; the Agg canvas needs no display
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = instances or [pricing.baseline_instance]
    low, high = requests_range(pricing, scenarios, names)
    xs = [low * (high / low) ** (i / 199) for i in range(200)]
    figure = Figure(figsize=(9, 5.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for scenario in scenarios:
        cost = float(_cost(pricing, scenario))
        label = f"{scenario.label or 'model'} (serverless, {_num(scenario.latency_ms)} ms, {scenario.memory_mb} MB)"
        axes.plot(xs, [x * cost for x in xs], label=label, linewidth=1.8)
    for name in names:
        monthly = pricing.per_month(name)
        axes.plot([low, high], [float(monthly)] * 2, linestyle="--", color="black", linewidth=1.4,
                  label=f"{name} (real-time, ${monthly:.2f}/month)")  # fmt: skip
        for scenario in scenarios:
            point = break_even(monthly, _cost(pricing, scenario))
            if point is not None and low <= point <= high:
                axes.scatter([float(point)], [float(monthly)], s=18, color="black", zorder=3)
    top = max(float(pricing.per_month(name)) for name in names)
    axes.set_xscale("log")
    axes.set_xlim(low, high)
    axes.set_ylim(0, top * 3)
    axes.set_xlabel("Requests per month")
    axes.set_ylabel(f"Monthly cost ({pricing.currency})")
    axes.set_title("Serverless vs real-time inference: monthly cost")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    return figure


def write_plot(path: str | Path, pricing: Pricing, scenarios: list[Scenario], instances: list[str] | None = None) -> Figure:
    """Draw the chart into ``path`` (.png or .svg) and return the figure."""
    target = Path(path)
    if target.suffix.lower() not in FORMATS:
        raise ValueError(f"--plot writes .png or .svg files (got '{target.name}')")
    figure = cost_figure(pricing, scenarios, instances)
    figure.savefig(target, format=target.suffix.lower()[1:], dpi=120)
    return figure


def _cost(pricing: Pricing, scenario: Scenario) -> Decimal:
    return per_request(pricing, scenario.latency_ms, scenario.memory_mb, scenario.bytes_per_request)


def _num(value: Decimal) -> str:
    return f"{value:f}".rstrip("0").rstrip(".") if "." in f"{value:f}" else f"{value:f}"
