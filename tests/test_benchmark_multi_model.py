"""benchmarks/multi_model.py (issue 18): its parts, fast, then the whole benchmark at its smallest.

The full run needs 20 DistilBERT-sized models and many minutes; these check that the calls are drawn,
the models made, the cold calls counted and the memory judged right, and that ``--quick`` runs end to
end through a real server (about 30 s) with the multi-model replica inside its budget.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))

import multi_model  # noqa: E402 - from benchmarks/, after the path is set
from multi_model import Call, Result, Sample  # noqa: E402


def test_zipf_sequence_is_fixed_by_its_seed_and_favours_the_first_ranks() -> None:
    sequence = multi_model.zipf_sequence(20, 5000, 1.1)
    assert sequence == multi_model.zipf_sequence(20, 5000, 1.1)
    assert sequence != multi_model.zipf_sequence(20, 5000, 1.1, seed=1)
    counts = collections.Counter(sequence)
    assert set(counts) <= set(range(20))
    assert counts[0] > counts[1] > counts[4] > counts[19] > 0
    assert 0.25 < counts[0] / 5000 < 0.35  # 1 / H(20, 1.1) = 0.29
    steeper = collections.Counter(multi_model.zipf_sequence(20, 5000, 2.0))
    assert steeper[0] > counts[0]


def _base(folder: Path) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"id2label": {"0": "NEGATIVE", "1": "POSITIVE"}}))
    (folder / "model.safetensors").write_bytes(b"w" * 4096)
    (folder / "tokenizer.json").write_text("{}")
    return folder


@pytest.mark.parametrize("link", [False, True])
def test_models_are_relabelled_copies_with_the_weights_copied_or_linked(tmp_path: Path, link: bool) -> None:
    base = _base(tmp_path / "base")
    names = multi_model.model_names(3)
    assert names == ["m01", "m02", "m03"]
    multi_model.make_models(base, tmp_path / "models", names, link=link)
    for name in names:
        folder = tmp_path / "models" / name
        config = json.loads((folder / "config.json").read_text())
        assert config["id2label"] == {"0": f"{name}-neg", "1": f"{name}-pos"}
        assert (folder / "tokenizer.json").read_text() == "{}"
        same_file = os.path.samefile(folder / "model.safetensors", base / "model.safetensors")
        assert same_file is link
    assert multi_model.weights_mb(tmp_path / "models" / "m01") == pytest.approx(4096 / 2**20)


def test_the_slowest_calls_are_the_cold_ones_as_many_as_the_replica_counted() -> None:
    calls = [Call(0, ms, 200) for ms in (40, 900, 35, 1200, 50, 41)]
    multi_model.mark_coldest(calls, 2)
    assert [c.cold for c in calls] == [False, True, False, True, False, False]
    result = Result("multi-model", calls, 1.0, [])
    assert result.cold_calls == 2
    assert result.latency(cold=False).p50 == 40.5 and result.latency(cold=True).n == 2


def _mme(peak_rss: float, used: float) -> Result:
    samples = [Sample(0.0, 1, 400.0, 450.0, 0.0), Sample(0.5, 1, peak_rss, peak_rss + 50, used)]
    return Result("multi-model", [Call(0, 30.0, 200)], 1.0, samples, idle_rss_mb=400.0, budget_mb=1000.0)


def test_memory_over_the_budget_fails_and_within_it_passes() -> None:
    within = multi_model.checks_for(_mme(1390.0, 990.0), None)  # 990 MB above idle, budget 1000
    assert [c.ok for c in within] == [True, True, True, True]
    over = multi_model.checks_for(_mme(1450.0, 990.0), None)  # 1050 MB above idle, budget 1000
    assert [c.ok for c in over] == [False, True, True, True]
    accounted = multi_model.checks_for(_mme(1300.0, 1001.0), None)
    assert [c.ok for c in accounted] == [True, False, True, True]


def test_ratios_compare_the_baseline_with_the_multi_model_endpoint() -> None:
    mme = _mme(1300.0, 900.0)
    mme.loads = 10
    peer = Result("per model", [Call(0, 60.0, 200, cold=True), Call(1, 30.0, 500)], 1.0,
                  [Sample(0.0, 4, 5200.0, 2700.0)], loads=20)  # fmt: skip
    checks = {c.label: c for c in multi_model.checks_for(mme, peer)}
    assert checks["memory (PSS) max, per model / multi-model"].value == "2.00"
    assert checks["replicas' RSS max, per model / multi-model"].value == "4.00"
    assert checks["loads (replica starts), per model / multi-model"].value == "2.00"
    assert checks["cold calls, per model / multi-model"].value == "inf"
    assert checks["per model: every call answered 200"].ok is False


def test_quick_fills_what_was_not_given_and_bad_sizes_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    args = multi_model.parse_args(["--quick", "--calls", "100"])
    assert (args.models, args.resident, args.calls, args.baseline_calls) == (6, 2, 100, 100)
    full = multi_model.parse_args(["--baseline-calls", "3000"])
    assert (full.models, full.resident, full.calls, full.baseline_calls, full.zipf_s) == (20, 5, 10_000, 3000, 1.1)
    with pytest.raises(SystemExit):
        multi_model.parse_args(["--models", "4", "--resident", "4"])
    assert "below --models" in capsys.readouterr().err


def test_quick_run_end_to_end_stays_within_the_budget(tmp_path: Path) -> None:
    """The real thing at its smallest: a real server, 6 models, 100 calls to each system."""
    docs = tmp_path / "benchmarks.md"
    argv = [sys.executable, str(BENCH_DIR / "multi_model.py"), "--quick", "--calls", "100", "--docs", str(docs)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, check=False)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    rows = {line.split()[0] + (" model" if line.startswith("per model") else ""): line.split()
            for line in out.splitlines() if line.startswith(("multi-model ", "per model "))}  # fmt: skip
    assert set(rows) == {"multi-model", "per model"}
    assert rows["multi-model"][1] == "100" and int(rows["multi-model"][10]) > 0  # calls, loads
    assert "FAIL" not in out and out.count("PASS") == 5
    assert not docs.exists()  # --quick never writes the docs
