"""Loading the price list: packaged defaults, a user's file merged over them, clear errors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from hubserve.cost.pricing import PricingError, load_pricing


def test_packaged_defaults_load() -> None:
    pricing = load_pricing()
    assert pricing.source == "defaults"
    assert pricing.hours_per_month == 730
    assert set(pricing.serverless.price_per_second_by_memory_mb) == {1024, 2048, 3072, 4096, 5120, 6144}
    assert {"ml.t2.medium", "cpu-small", "cpu-xlarge", "gpu-small", "gpu-large"} <= set(pricing.instances)


def test_a_user_file_overrides_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("serverless:\n  price_per_second_by_memory_mb:\n    4096: 0.0001\n"
                    "instances:\n  my-box: {per_hour: 0.01}\nbaseline_instance: my-box\n")  # fmt: skip
    pricing = load_pricing(path)
    assert pricing.source == str(path)
    assert pricing.serverless_per_second(4096) == Decimal("0.0001")
    assert pricing.serverless_per_second(2048) == Decimal("0.0000400")  # untouched default
    assert pricing.per_month("my-box") == Decimal("7.30")
    assert pricing.per_month("cpu-small") == Decimal("43.80")
    assert pricing.baseline_instance == "my-box"


def test_the_environment_variable_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "env.yaml"
    path.write_text("hours_per_month: 720\n")
    monkeypatch.setenv("HUBSERVE_PRICING", str(path))
    assert load_pricing().per_month("ml.t2.medium") == Decimal("40.320")


def test_the_home_file_is_read_when_present(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUBSERVE_PRICING", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".hubserve").mkdir()
    (tmp_path / ".hubserve" / "pricing.yaml").write_text("serverless:\n  price_per_gb_processed: 0.02\n")
    assert load_pricing().serverless.price_per_gb_processed == Decimal("0.02")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("instances:\n  cpu-small: {per_hour: -1}\n", "instances.cpu-small.per_hour"),
        ("instances:\n  both: {per_hour: 1, per_month: 730}\n", "exactly one of per_hour or per_month"),
        ("instances:\n  cpu-small: {per_hour: 0.1, colour: red}\n", "instances.cpu-small.colour"),
        ("baseline_instance: nowhere\n", "baseline_instance 'nowhere' is not one of the instances"),
        ("serverless:\n  price_per_second_by_memory_mb: {4096: lots}\n", "price_per_second_by_memory_mb.4096"),
        ("- a list\n", "must be a YAML mapping"),
        ("serverless: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_bad_pricing_file_says_where_and_why(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(PricingError) as caught:
        load_pricing(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_a_missing_pricing_file(tmp_path: Path) -> None:
    with pytest.raises(PricingError, match=r"cannot read pricing file .*nope.yaml"):
        load_pricing(tmp_path / "nope.yaml")
