"""The cost arithmetic against the seeds' own figures, exactly (Decimals, no tolerance)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hubserve.cost.model import Scenario, Usage, break_even, compare, per_request, price_usage
from hubserve.cost.presets import SEED_MODELS
from hubserve.cost.pricing import Pricing, PricingError, load_pricing
from hubserve.cost.usage import parse_window, usage_from_metrics


@pytest.fixture(scope="module")
def pricing() -> Pricing:
    return load_pricing()


def test_serverless_price_at_4096_mb_is_the_seeds(pricing: Pricing) -> None:
    assert pricing.serverless_per_second(4096) == Decimal("0.000080")
    assert pricing.serverless_per_second(1024) == Decimal("0.0000200")  # $0.0000200 per GB-second


def test_distilbert_reproduces_the_seeds_arithmetic(pricing: Pricing) -> None:
    comparison = compare(pricing, Scenario("distilbert", Decimal(243 + 43), 4096), Decimal("1e6"))
    assert comparison.per_request == Decimal("0.00002288")
    assert comparison.per_thousand == Decimal("0.02288")
    assert comparison.per_million == Decimal("22.88")
    assert comparison.serverless_per_month == Decimal("22.88")


def test_break_even_against_ml_t2_medium(pricing: Pricing) -> None:
    assert pricing.baseline_instance == "ml.t2.medium"
    assert pricing.per_hour("ml.t2.medium") == Decimal("0.056")
    # the seed's "$42 per month" is $0.056/h rounded up; at 730 h it is $40.88
    assert pricing.per_month("ml.t2.medium") == Decimal("40.88")
    cost = per_request(pricing, Decimal(286), 4096)
    point = break_even(pricing.per_month("ml.t2.medium"), cost)
    assert point is not None
    assert round(point) == 1_786_713  # 40.88 / 0.00002288
    assert abs(point * cost - pricing.per_month("ml.t2.medium")) < Decimal("1e-20")
    row = next(r for r in compare(pricing, Scenario("d", Decimal(286), 4096), Decimal(1)).instances if r.name == "ml.t2.medium")
    assert row.break_even_requests == point


def test_dedicated_sizes_match_the_second_seeds_monthly_table(pricing: Pricing) -> None:
    expected = {"cpu-small": "43.80", "cpu-medium": "87.61", "cpu-large": "175.22", "cpu-xlarge": "350.44"}
    for name, monthly in expected.items():
        assert pricing.per_month(name) == Decimal(monthly)
        assert pricing.per_hour(name) == Decimal(monthly) / 730
    for gpu in ("gpu-small", "gpu-medium", "gpu-large"):
        assert pricing.per_hour(gpu) > pricing.per_hour("cpu-xlarge") / 2


def test_data_processed_is_charged_per_gb(pricing: Pricing) -> None:
    without = per_request(pricing, Decimal(286), 4096)
    with_data = per_request(pricing, Decimal(286), 4096, bytes_per_request=1024**3)
    assert with_data - without == Decimal("0.016")


def test_seed_preset_is_the_seed_table_p99_sums() -> None:
    by_label = {s.label: s for s in SEED_MODELS}
    assert len(by_label) == 5
    assert by_label["distilbert-base-uncased-finetuned-sst-2-english"].latency_ms == 286
    assert by_label["google/pegasus-xsum"] == Scenario("google/pegasus-xsum", Decimal(32613), 6144)


def test_unpriced_memory_size_is_a_clear_error(pricing: Pricing) -> None:
    with pytest.raises(PricingError, match="no serverless price for 1500 MB"):
        per_request(pricing, Decimal(10), 1500)


def test_an_hour_of_real_traffic(pricing: Pricing) -> None:
    metrics = {"invocations": 1000, "model_latency_ms": {"sum": 243_000.0, "avg": 243.0},
               "overhead_latency_ms": {"sum": 43_000.0}, "bytes_in": 1024**3 // 2, "bytes_out": 1024**3 // 2}  # fmt: skip
    usage = usage_from_metrics(metrics, 4096, parse_window("1h"))
    assert usage == Usage(1000, Decimal("286000.0"), 1024**3, 4096, Decimal(3600))
    priced = price_usage(pricing, usage)
    assert priced.serverless_compute == Decimal("0.02288")  # 1000 requests of 286 ms
    assert priced.serverless_data == Decimal("0.016")
    assert priced.instances["ml.t2.medium"] == (Decimal("0.056"), Decimal("40.88"))
    assert priced.requests_per_month == 730_000
    assert priced.serverless_month == (Decimal("0.02288") + Decimal("0.016")) * 730


def test_parse_window() -> None:
    assert parse_window("90s") == 90 and parse_window("15m") == 900 and parse_window("1d") == 86400
    for bad in ("", "1w", "0h", "h"):
        with pytest.raises(ValueError):
            parse_window(bad)
