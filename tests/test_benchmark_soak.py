"""benchmarks/soak.py (issue 21): its arithmetic, then ``--quick`` end to end through real servers.

``--quick`` soaks a serverless endpoint with 20 clients for 60 s and floods another at 5x its
capacity; it exits 1 when any check fails: an error other than a 429, server or replica memory
growing faster than 20 MB a minute, descriptors or threads that keep growing, a refusal that is not
a 429 with Retry-After or not immediate, an admitted p99 past 2x its value at capacity.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))

import soak  # noqa: E402 - from benchmarks/, after the path is set
from soak import Overload, Sample, Soak  # noqa: E402


def test_slope_is_megabytes_per_minute() -> None:
    assert soak.slope_per_minute([(0, 100.0), (60, 101.0), (120, 102.0), (180, 103.0)]) == pytest.approx(1.0)
    assert soak.slope_per_minute([(0, 100.0), (30, 100.0), (60, 100.0)]) == 0.0
    assert soak.slope_per_minute([(0, 1.0), (10, 2.0)]) == 0.0  # too few points to tell


def _sample(at_s: float, server_mb: float, fds: int = 20) -> Sample:
    return Sample(at_s=at_s, server_mb=server_mb, replicas_mb=800.0, replicas=2, server_fds=fds, server_threads=9,
                  load_average=1.0)  # fmt: skip


def test_a_leaking_server_fails_the_soak_checks() -> None:
    args = soak.parse_args(["--quick"])
    records = [(t / 10, 12.0, 200) for t in range(600)] + [(30.0, 5.0, 429)]
    flat = Soak("flat", records, [_sample(t, 120.0) for t in range(0, 61, 2)], warmup_s=15)
    assert all(soak.soak_checks(flat, args).values()), soak.soak_checks(flat, args)
    leaking = Soak("leaking", records, [_sample(t, 120.0 + t) for t in range(0, 61, 2)], warmup_s=15)  # 60 MB/min
    assert not soak.soak_checks(leaking, args)["leaking: server memory flat"]
    fds = Soak("fds", records, [_sample(t, 120.0, fds=20 + t) for t in range(0, 61, 2)], warmup_s=15)
    assert not soak.soak_checks(fds, args)["fds: descriptors flat"]
    failing = Soak("failing", [*records, (40.0, 30.0, 502)], flat.samples, warmup_s=15)
    assert not soak.soak_checks(failing, args)["failing: no errors but 429"]
    assert [row["requests"] for row in flat.per_minute()] == [601]


def test_overload_checks_refusals_and_the_admitted_p99() -> None:
    at_capacity = [(t / 10, 100.0, 200) for t in range(100)]
    good = Overload(4, at_capacity, at_capacity, 50.0, [(0.1, 150.0, 200, False), (0.2, 3.0, 429, True)])
    assert all(good.checks().values())
    slow = Overload(4, at_capacity, at_capacity, 50.0, [(0.1, 250.0, 200, False), (0.2, 1500.0, 429, True)])
    assert not slow.checks()["admitted p99 within 2x at capacity"] and not slow.checks()["429s at once (<1 s)"]
    bare = Overload(4, at_capacity, at_capacity, 50.0, [(0.2, 3.0, 429, False), (0.3, 3.0, 503, True)])
    assert not bare.checks()["refusals are 429 with Retry-After"] and not bare.checks()["no 5xx"]


@pytest.mark.timeout(600)
def test_quick_soak_passes_through_real_servers() -> None:
    done = subprocess.run([sys.executable, str(BENCH_DIR / "soak.py"), "--quick"], capture_output=True, text=True,
                          timeout=540)  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "serverless: server memory flat: PASS" in done.stdout
    assert "overload: refusals are 429 with Retry-After: PASS" in done.stdout
