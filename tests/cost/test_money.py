"""Money as `hubserve cost` prints it: amounts to the cent, per-request prices in fractions of a cent,
one precision per column (issue 14: rows that rounded differently)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hubserve.cost.money import amount, price, price_places


@pytest.mark.parametrize(
    ("value", "text"),
    [("22.88", "$22.88"), ("2920", "$2,920.00"), ("0.02288", "$0.02"), ("0.005", "$0.01"), ("1234.565", "$1,234.57"),
     ("0", "$0.00"), ("0.00002288", "<$0.01"), ("-3.1", "-$3.10")],
)  # fmt: skip
def test_amounts_are_cents(value: str, text: str) -> None:
    assert amount(Decimal(value)) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [("0.00002288", "$0.00002288"), ("0.00008", "$0.00008"), ("0.0001654", "$0.0001654"), ("0.123456", "$0.1235"),
     ("0.5", "$0.50"), ("4", "$4.00")],
)  # fmt: skip
def test_prices_keep_the_fractions_of_a_cent_they_need(value: str, text: str) -> None:
    assert price(Decimal(value)) == text


def test_a_column_shares_one_precision() -> None:
    hourly = [Decimal(v) for v in ("0.056", "0.06", "0.4801", "1", "4")]
    places = price_places(hourly)
    assert [price(v, places) for v in hourly] == ["$0.0560", "$0.0600", "$0.4801", "$1.0000", "$4.0000"]


def test_cli_rows_round_alike() -> None:
    from typer.testing import CliRunner

    from hubserve.cli.main import app

    result = CliRunner().invoke(app, ["cost", "--latency-ms", "286", "--memory-mb", "4096"], env={"HUBSERVE_PRICING": ""})
    assert result.exit_code == 0, result.output
    rows = {line.split("  ")[0]: line.split()[-1] for line in result.stdout.splitlines()[1:4]}
    assert rows == {"per request": "$0.00002288", "per thousand": "$0.02", "per million": "$22.88"}
    hourly = [line.split()[2] for line in result.stdout.splitlines() if line.startswith(("ml.", "cpu-", "gpu-"))]
    assert len(hourly) >= 5 and len({len(h.split(".")[1]) for h in hourly}) == 1, hourly  # one precision per column
    monthly = [line.split()[3] for line in result.stdout.splitlines() if line.startswith(("ml.", "cpu-", "gpu-"))]
    assert all(m.startswith("$") and len(m.split(".")[1]) == 2 for m in monthly), monthly
