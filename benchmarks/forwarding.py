"""What forwarding costs: a request sent to the server that runs its endpoint, and one sent to another
server on the same store, which relays it (api/forwarding.py).

Two real ``hubserve serve`` processes share one store (SQLite in WAL mode by URL here: the same code as
PostgreSQL for leases and the servers table); server A deploys a no-op endpoint (the handler answers at
once, so the figures are the servers' own cost). Measured in one run:
  c=1   ``--requests`` requests, direct (to A) and forwarded (to B) taken in turns, so a busy machine
        slows both alike: p50 and p99 of each, and what the hop adds
  c=32  ``--duration`` seconds each, direct then forwarded: throughput and p99
B relays over one pooled HTTP/1.1 client to A on loopback; at c=32 it spends a core of its own.

    flock /tmp/hubserve-bench.lock .venv/bin/python benchmarks/forwarding.py [--requests 500] [--duration 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    REPLICAS_AS_THE_SERVER,
    Stats,
    free_port,
    print_table,
    run_loadgen,
    running,
    write_body,
    write_noop_handler,
)

NAME = "noop"


def serve(home: Path, store: str) -> tuple[list[str], str]:
    port = free_port()
    argv = [sys.executable, "-m", "hubserve", "serve", "--port", str(port), "--home", str(home), "--store", store]
    return argv, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    os.environ.update(REPLICAS_AS_THE_SERVER)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        store = f"sqlite:///{tmp / 'shared.db'}"
        model = write_noop_handler(tmp / "noop")
        argv_a, url_a = serve(tmp / "home-a", store)
        argv_b, url_b = serve(tmp / "home-b", store)
        with running(argv_a, f"{url_a}/health", log=tmp / "a.log"), running(argv_b, f"{url_b}/health", log=tmp / "b.log"):
            spec = {"name": NAME, "model": {"source": str(model), "task": "text-classification"}, "custom_code": True,
                    "compute": {"type": "dedicated", "instance": "cpu-small", "min_replicas": 1, "max_replicas": 1}}  # fmt: skip
            with httpx.Client(timeout=120) as http:
                http.post(f"{url_a}/v1/endpoints", json=spec).raise_for_status()
                while http.get(f"{url_a}/v1/endpoints/{NAME}").json()["state"] != "running":
                    time.sleep(0.2)
                body = {"inputs": "x"}
                times: dict[str, list[float]] = {"direct": [], "forwarded": []}
                for _ in range(50):  # warm both paths (and B's pool to A)
                    http.post(f"{url_a}/endpoints/{NAME}", json=body).raise_for_status()
                    http.post(f"{url_b}/endpoints/{NAME}", json=body).raise_for_status()
                for _ in range(args.requests):
                    for kind, url in (("direct", url_a), ("forwarded", url_b)):
                        started = time.perf_counter()
                        http.post(f"{url}/endpoints/{NAME}", json=body).raise_for_status()
                        times[kind].append((time.perf_counter() - started) * 1000)
            body_file = write_body(tmp / "body.json", body)
            c32 = {kind: run_loadgen(f"{url}/endpoints/{NAME}", body_file, 32, duration=args.duration)
                   for kind, url in (("direct", url_a), ("forwarded", url_b))}  # fmt: skip
    c1 = {kind: Stats.of(values) for kind, values in times.items()}
    rows = [[kind, f"{c1[kind].p50:.2f}", f"{c1[kind].p99:.2f}", f"{c32[kind].throughput:.0f}",
             f"{c32[kind].latency().p99:.1f}", str(c32[kind].errors)] for kind in ("direct", "forwarded")]  # fmt: skip
    print(f"\nno-op endpoint, two servers on one store; c=1: {args.requests} each, in turns; c=32: {args.duration:.0f} s each\n")
    print_table(["request", "c=1 p50 ms", "c=1 p99 ms", "c=32 req/s", "c=32 p99 ms", "errors"], rows, left=1)
    print(f"\nforwarding adds {c1['forwarded'].p50 - c1['direct'].p50:.2f} ms at c=1 (p50); "
          f"c=32 throughput forwarded / direct: {c32['forwarded'].throughput / c32['direct'].throughput:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
