"""The no-op endpoint's tail at concurrency 32: hubserve and LitServe side by side, alternating.

One ``hubserve serve`` with the suite's no-op endpoint (``custom_code`` handler, one cpu-medium
replica) and one LitServe no-op server run together; the loadgen drives each in turn, round
after round, so both see the same machine. Prints req/s, p50 and p99 per round and the medians.

    flock /tmp/hubserve-bench.lock .venv/bin/python benchmarks/tail_noop.py [--rounds 3] [--duration 8]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
from suite import hubserve_spec

CONCURRENCY = 32
BODY = {"inputs": " ".join(["the quick brown fox jumps over the lazy dog"] * 14)}  # ~128 tokens, as the suite


@contextlib.contextmanager
def hubserve_noop(tmp: Path, env: dict[str, str]) -> Iterator[str]:
    folder = common.write_noop_handler(tmp / "no-op")
    process, url = common.start_server(tmp / "home", env=env, log=tmp / "hubserve.log")
    try:
        with common.endpoint(url, hubserve_spec("noop", str(folder), "torch", custom_code=True)) as invoke_url:
            yield invoke_url
    finally:
        common.stop_process(process)


@contextlib.contextmanager
def litserve_noop(tmp: Path) -> Iterator[str]:
    port = common.free_port()
    argv = [sys.executable, str(common.BENCH_DIR / "baselines" / "litserve_pipeline.py"), "--noop", "--port", str(port)]
    with common.running(argv, f"http://127.0.0.1:{port}/health", log=tmp / "litserve.log"):
        yield f"http://127.0.0.1:{port}/predict"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--c1", type=int, default=300, help="sequential requests to hubserve first (0: none)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="for the hubserve server")
    parser.add_argument("--no-litserve", action="store_true", help="hubserve only (quicker iterations)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tail-noop-") as name, contextlib.ExitStack() as stack:
        tmp = Path(name)
        body = common.write_body(tmp / "body.json", BODY)
        urls = {"hubserve": stack.enter_context(hubserve_noop(tmp, dict(kv.split("=", 1) for kv in args.env)))}
        if not args.no_litserve:
            urls["litserve"] = stack.enter_context(litserve_noop(tmp))
        if args.c1:
            c1 = common.run_loadgen(urls["hubserve"], body, 1, requests=args.c1, warmup=20)
            over = common.Stats.of(c1.overhead_ms)
            print(f"hubserve c=1: p50 {c1.latency().p50:.3f} ms, overhead p50 {over.p50:.3f} ms p99 {over.p99:.3f} ms")
        figures: dict[str, list[tuple[float, float, float]]] = {system: [] for system in urls}
        print(f"{'round':>5} {'system':>9} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'errors':>6} {'lg cpu%':>7}")
        for round_ in range(1, args.rounds + 1):
            for system, url in urls.items():
                result = common.run_loadgen(url, body, CONCURRENCY, duration=args.duration, warmup=CONCURRENCY)
                stats = result.latency()
                figures[system].append((result.throughput, stats.p50, stats.p99))
                print(f"{round_:>5} {system:>9} {result.throughput:>8.0f} {stats.p50:>7.1f} {stats.p99:>7.1f} "
                      f"{max(result.latencies_ms):>7.1f} {result.errors:>6} {result.cpu_percent:>7.0f}", flush=True)  # fmt: skip
        for system, rows in figures.items():
            rps, p50, p99 = (statistics.median(column) for column in zip(*rows, strict=True))
            print(f"median {system:>9} {rps:>8.0f} {p50:>7.1f} {p99:>7.1f}")


if __name__ == "__main__":
    main()
