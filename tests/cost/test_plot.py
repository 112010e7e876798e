"""Figure 1 as a file: a real PNG / SVG holding one line per model plus the real-time instance."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import pytest

from hubserve.cost.model import Scenario, break_even, per_request
from hubserve.cost.plot import requests_range, write_plot
from hubserve.cost.presets import SEED_MODELS
from hubserve.cost.pricing import load_pricing

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_seed_figure_as_png_has_one_line_per_model_and_the_instance(tmp_path: Path) -> None:
    pricing = load_pricing()
    path = tmp_path / "figure1.png"
    figure = write_plot(path, pricing, list(SEED_MODELS))
    assert path.read_bytes()[:8] == PNG_MAGIC
    axes = figure.axes[0]
    labels = [line.get_label() for line in axes.get_lines()]
    assert len(labels) == 6
    for scenario in SEED_MODELS:
        assert any(label.startswith(f"{scenario.label} (serverless, {scenario.latency_ms} ms, {scenario.memory_mb} MB)") for label in labels)
    assert labels[-1] == "ml.t2.medium (real-time, $40.88/month)"
    assert axes.get_xscale() == "log"
    # each serverless line is cost = requests x per-request price; the instance line is flat at $40.88
    distilbert = axes.get_lines()[0]
    xs, ys = distilbert.get_xdata(), distilbert.get_ydata()
    assert ys[-1] == pytest.approx(xs[-1] * 0.00002288)
    assert list(axes.get_lines()[-1].get_ydata()) == pytest.approx([40.88, 40.88])
    # every break-even (40.88 / per-request price) lies inside the x range
    low, high = axes.get_xlim()
    for scenario in SEED_MODELS:
        point = break_even(Decimal("40.88"), per_request(pricing, scenario.latency_ms, scenario.memory_mb))
        assert point is not None and low <= point <= high


def test_svg_parses_and_names_every_series(tmp_path: Path) -> None:
    pricing = load_pricing()
    scenarios = [Scenario("small", Decimal(100), 2048), Scenario("large", Decimal(1000), 6144)]
    path = tmp_path / "cost.svg"
    figure = write_plot(path, pricing, scenarios, ["ml.t2.medium", "cpu-medium"])
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = path.read_text()
    for label in ("small (serverless, 100 ms, 2048 MB)", "large (serverless, 1000 ms, 6144 MB)",
                  "ml.t2.medium (real-time", "cpu-medium (real-time"):  # fmt: skip
        assert label in text  # matplotlib draws text as glyph paths, each string kept in a comment beside them
    assert [line.get_label() for line in figure.axes[0].get_lines()][-2:] == [
        "ml.t2.medium (real-time, $40.88/month)",
        "cpu-medium (real-time, $87.61/month)",
    ]


def test_other_formats_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        write_plot(tmp_path / "cost.pdf", load_pricing(), list(SEED_MODELS))


def test_range_spans_whole_decades_around_the_break_evens() -> None:
    low, high = requests_range(load_pricing(), list(SEED_MODELS), ["ml.t2.medium"])
    assert (low, high) == (1e3, 1e8)
