"""`hubserve cost` as a user runs it (typer's CliRunner, the real command, no server needed)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hubserve.cli.main import app

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), env={"HUBSERVE_PRICING": "", **(env or {})})


def test_the_seeds_distilbert_line() -> None:
    result = run("cost", "--latency-ms", "286", "--memory-mb", "4096", "--requests-per-month", "1e6")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "$0.00008 per second" in out
    assert "$0.00002288" in out and "$22.88" in out  # per request keeps fractions of a cent; the rest is cents
    assert "Break-even with ml.t2.medium ($40.88/month): 1,786,713 requests/month" in out
    for size in ("cpu-small", "cpu-medium", "cpu-large", "cpu-xlarge", "gpu-small", "gpu-medium", "gpu-large"):
        assert size in out


def test_json_for_machines_with_the_global_flag() -> None:
    result = run("--json", "cost", "--latency-ms", "286", "--instance", "ml.t2.medium")
    assert result.exit_code == 0, result.output
    scenario = json.loads(result.stdout)["scenarios"][0]
    assert scenario["per_request"] == 0.00002288 and scenario["per_million"] == 22.88
    assert [row["name"] for row in scenario["instances"]] == ["ml.t2.medium"]
    assert round(scenario["instances"][0]["break_even_requests_per_month"]) == 1_786_713


def test_several_models_with_labels_and_a_plot(tmp_path: Path) -> None:
    plot = tmp_path / "fig.png"
    result = run("--json", "cost", "--latency-ms", "286", "--label", "distilbert", "--latency-ms", "499",
                 "--label", "roberta", "--memory-mb", "4096", "--memory-mb", "5120", "--plot", str(plot))  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(s["label"], s["memory_mb"]) for s in report["scenarios"]] == [("distilbert", 4096), ("roberta", 5120)]
    assert report["plot"] == str(plot) and plot.read_bytes()[:4] == b"\x89PNG"


def test_seed_preset_prints_all_five_models() -> None:
    result = run("cost", "--preset", "seed", "--instance", "ml.t2.medium")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("Break-even with ml.t2.medium") == 5
    assert "google/pegasus-xsum" in result.stdout


def test_user_pricing_file_changes_the_answer(tmp_path: Path) -> None:
    prices = tmp_path / "p.yaml"
    prices.write_text("serverless:\n  price_per_second_by_memory_mb: {4096: 0.0001}\n")
    result = run("--json", "cost", "--latency-ms", "286", "--pricing", str(prices))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["pricing"] == str(prices) and report["scenarios"][0]["per_million"] == 28.6
    from_env = run("--json", "cost", "--latency-ms", "286", env={"HUBSERVE_PRICING": str(prices)})
    assert json.loads(from_env.stdout)["scenarios"][0]["per_million"] == 28.6


def test_errors_are_one_line_and_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("instances:\n  cpu-small: {per_hour: -2}\n")
    result = run("cost", "--latency-ms", "286", "--pricing", str(bad))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {bad}: not a valid price list") and "instances.cpu-small.per_hour" in result.stderr
    for args, message in [
        (("cost",), "give --latency-ms"),
        (("cost", "--latency-ms", "fast"), "--latency-ms must be a number"),
        (("cost", "--latency-ms", "286", "--memory-mb", "1500"), "no serverless price for 1500 MB"),
        (("cost", "--latency-ms", "1", "--latency-ms", "2", "--memory-mb", "1024", "--memory-mb", "2048", "--memory-mb", "4096"), "one per --latency-ms"),
        (("cost", "--preset", "nope"), "unknown preset 'nope'"),
        (("cost", "--latency-ms", "286", "--instance", "ml.x"), "no price for instance 'ml.x'"),
        (("cost", "--latency-ms", "286", "--plot", str(tmp_path / "f.pdf")), ".png or .svg"),
    ]:
        failed = run(*args)
        assert failed.exit_code == 1, (args, failed.output)
        assert message in failed.stderr, (args, failed.stderr)
