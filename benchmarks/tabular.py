"""Issue 20's benchmark: a scikit-learn model through hubserve against the same model called in-process.

    flock /tmp/hubserve-bench.lock .venv/bin/python benchmarks/tabular.py [--requests 300] [--big-requests 30]
        [--duration 10] [--rounds 5] [--no-docs]

A GradientBoostingClassifier on 30 numeric columns (200 trees, saved with skops in the Hub's layout).
Rows per second at batch size 1 (one row a request; c=1, and c=8 for ``--duration`` seconds) and at
batch size 1,000 (c=1), in-process (``models.tabular``'s predictor, the floor) and through a real
``hubserve serve`` (a dedicated cpu-small endpoint); then the cold start from zero of a serverless
endpoint (``--rounds`` times: scaled to zero through the API, then one request until its answer) and
the replica's memory, which never imports torch. Prints the table and the ratios, and rewrites the
section between ``<!-- tabular:start -->`` and ``<!-- tabular:end -->`` in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import common

COLUMNS = 30
TRUSTED = ["sklearn.tree._tree.Tree"]  # skops trusts no tree type by default: the spec names it, as a user's would
JSON = {"Content-Type": "application/json"}
DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def build_model(folder: Path) -> Path:
    """GradientBoostingClassifier(200 trees, depth 3) on 30 numeric columns, 3 classes, in the Hub's layout."""
    import numpy as np
    from sklearn.ensemble import GradientBoostingClassifier
    from skops.io import dump

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, COLUMNS))
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype(int) + (x[:, 3] > 1).astype(int)
    model = GradientBoostingClassifier(n_estimators=200, max_depth=3, random_state=0).fit(x, y)
    folder.mkdir(parents=True, exist_ok=True)
    dump(model, folder / "model.skops")
    columns = [f"f{i}" for i in range(COLUMNS)]
    example = {column: [float(v) for v in x[:3, i]] for i, column in enumerate(columns)}
    config = {"sklearn": {"columns": columns, "example_input": example, "model": {"file": "model.skops"},
                          "model_format": "skops", "task": "tabular-classification"}}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def body_of(rows: int, seed: int = 1) -> dict[str, Any]:
    import numpy as np

    x = np.random.default_rng(seed).normal(size=(rows, COLUMNS))
    return {"inputs": {"data": {f"f{i}": [float(v) for v in x[:, i]] for i in range(COLUMNS)}}}


def in_process(
    folder: Path, small: dict[str, Any], big: dict[str, Any], requests: int, big_requests: int
) -> dict[str, float]:
    from hubserve.models.tabular import load_tabular

    predictor, _ = load_tabular(folder, "tabular-classification", trusted_types=TRUSTED)
    predictor(small)
    started = time.perf_counter()
    for _ in range(requests):
        predictor(small)
    one = requests / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(big_requests):
        predictor(big)
    thousand = big_requests * 1000 / (time.perf_counter() - started)
    return {"rows_s_b1": one, "rows_s_b1000": thousand}


def through_hubserve(
    url: str, small_body: dict[str, Any], big_body: dict[str, Any], args: argparse.Namespace
) -> dict[str, float]:
    # Bodies encoded once, as a load generator sends them: 1,000 rows are 600 KB of JSON, which the stdlib's
    # json.dumps takes 23 ms to write, more than hubserve takes to answer them.
    small, big = _encoded(small_body), _encoded(big_body)
    with httpx.Client(base_url=url, timeout=120, headers=JSON) as client:
        for _ in range(5):
            client.post("/endpoints/tab-bench", content=small).raise_for_status()
        latencies = []
        started = time.perf_counter()
        for _ in range(args.requests):
            sent = time.perf_counter()
            client.post("/endpoints/tab-bench", content=small).raise_for_status()
            latencies.append((time.perf_counter() - sent) * 1000)
        one = args.requests / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(args.big_requests):
            client.post("/endpoints/tab-bench", content=big).raise_for_status()
        thousand = args.big_requests * 1000 / (time.perf_counter() - started)
    concurrent = _concurrent(url, small, 8, args.duration)
    return {"rows_s_b1": one, "rows_s_b1000": thousand, "rows_s_b1_c8": concurrent,
            "p50_ms": statistics.median(latencies), "p99_ms": common.percentile(latencies, 99)}  # fmt: skip


def _encoded(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def _concurrent(url: str, body: bytes, clients: int, seconds: float) -> float:
    deadline = time.monotonic() + seconds

    def worker() -> int:
        done = 0
        with httpx.Client(base_url=url, timeout=120, headers=JSON) as client:
            while time.monotonic() < deadline:
                client.post("/endpoints/tab-bench", content=body).raise_for_status()
                done += 1
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        total = sum(pool.map(lambda _: worker(), range(clients)))
    return total / (time.perf_counter() - started)


def cold_starts(url: str, folder: Path, small: dict[str, Any], rounds: int) -> tuple[list[float], float]:
    """Milliseconds from a request to a scaled-to-zero serverless endpoint until its answer; the replica's RSS (MB)."""
    from hubserve.sdk.client import Client

    spec = {
        "name": "tab-cold",
        "model": {"source": str(folder), "trusted_types": TRUSTED},
        "compute": {"type": "serverless", "memory_mb": 1024},
    }
    times, rss = [], 0.0
    with common.endpoint(url, spec), Client(url) as client, httpx.Client(base_url=url, timeout=120) as http:
        http.post("/endpoints/tab-cold", json=small).raise_for_status()
        for _ in range(rounds):
            client.scale_to_zero("tab-cold")
            deadline = time.monotonic() + 60
            while client.get_endpoint("tab-cold")["replicas"]["ready"] and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(0.5)
            sent = time.perf_counter()
            answer = http.post("/endpoints/tab-cold", json=small)
            answer.raise_for_status()
            times.append((time.perf_counter() - sent) * 1000)
            rss = max(rss, _replica_rss_mb("tab-cold"))
    return times, rss


def _replica_rss_mb(endpoint: str) -> float:
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "hubserve.worker" not in cmdline or f'"endpoint":"{endpoint}"' not in cmdline:
                continue
            status = Path(f"/proc/{entry}/status").read_text()
            maps = Path(f"/proc/{entry}/maps").read_text()
        except OSError:
            continue
        if "libtorch" in maps:
            raise SystemExit(f"the replica of {endpoint} (pid {entry}) loaded torch")
        total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")) / 1024
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="batch-size-1 requests at c=1")
    parser.add_argument("--big-requests", type=int, default=30, help="1,000-row requests at c=1")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of batch-size-1 requests at c=8")
    parser.add_argument("--rounds", type=int, default=5, help="cold starts from zero")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="hubserve-tabular-") as tmp:
        folder = build_model(Path(tmp) / "gbc")
        small, big = body_of(1), body_of(1000)
        floor = in_process(folder, small, big, args.requests, args.big_requests)
        process, url = common.start_server(Path(tmp) / "home", log=Path(tmp) / "server.log")
        try:
            spec = {"name": "tab-bench", "model": {"source": str(folder), "trusted_types": TRUSTED},
                    "compute": {"type": "dedicated", "instance": "cpu-small", "min_replicas": 1}}  # fmt: skip
            with common.endpoint(url, spec):
                served = through_hubserve(url, small, big, args)
            colds, rss = cold_starts(url, folder, small, args.rounds)
        finally:
            common.stop_process(process)
        # The other way to start a replica without torch: a fresh Python process each time (no zygote at all).
        process, url = common.start_server(Path(tmp) / "home-fresh", env={"HUBSERVE_ZYGOTE": "false"},
                                           log=Path(tmp) / "server-fresh.log")  # fmt: skip
        try:
            fresh, fresh_rss = cold_starts(url, folder, small, args.rounds)
        finally:
            common.stop_process(process)

    rows = [
        ["in-process", f"{floor['rows_s_b1']:.0f}", "-", f"{floor['rows_s_b1000']:.0f}"],
        ["hubserve", f"{served['rows_s_b1']:.0f}", f"{served['rows_s_b1_c8']:.0f}", f"{served['rows_s_b1000']:.0f}"],
        ["hubserve / in-process", f"{served['rows_s_b1'] / floor['rows_s_b1']:.2f}", "-",
         f"{served['rows_s_b1000'] / floor['rows_s_b1000']:.2f}"],
    ]  # fmt: skip
    header = ["system", "rows/s, batch 1, c=1", "rows/s, batch 1, c=8", "rows/s, batch 1000, c=1"]
    common.print_table(header, rows, left=1)
    cold_line = (
        f"cold start from zero (serverless, 1024 MB, no torch), median of {len(colds)}: forked from the light zygote "
        f"{statistics.median(colds):.0f} ms (min {min(colds):.0f}, max {max(colds):.0f}; replica RSS {rss:.0f} MB), "
        f"a fresh process {statistics.median(fresh):.0f} ms (min {min(fresh):.0f}, max {max(fresh):.0f}; RSS "
        f"{fresh_rss:.0f} MB): the zygote's start is {statistics.median(fresh) / statistics.median(colds):.1f}x faster"
    )
    latency_line = f"batch 1 at c=1 through hubserve: p50 {served['p50_ms']:.1f} ms, p99 {served['p99_ms']:.1f} ms"
    print(cold_line)
    print(latency_line)
    if not args.no_docs:
        command = "flock /tmp/hubserve-bench.lock .venv/bin/python benchmarks/tabular.py " + " ".join(sys.argv[1:])
        content = (
            f"Measured {common.machine_line()}. Command: `{command.strip()}`.\n\n"
            f"A GradientBoostingClassifier (200 trees, depth 3) on {COLUMNS} numeric columns, saved with skops in the "
            "Hub's scikit-learn layout; hubserve: a dedicated cpu-small endpoint (1 vCPU), requests in the Inference "
            'API\'s shape (`{"inputs": {"data": {column: [values]}}}`); in-process: the same predictor called '
            "directly (`models.tabular.load_tabular`).\n\n"
            + common.markdown_table(header, rows, align=lambda i: "---" if i < 1 else "---:")
            + f"\n\n{latency_line}; {cold_line}.\n"
        )
        common.replace_section(DOCS, "tabular", content, "## scikit-learn models: rows per second and cold start")


if __name__ == "__main__":
    main()
