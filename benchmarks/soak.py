"""Issue 21: a soak under many clients, the machine's replica cap against none, and an overload.

Three parts, each on its own ``hubserve serve`` (a fresh home), all with the same model: a full-size
DistilBERT SST-2-shaped classifier (random weights, the real BERT-uncased tokenizer; ``--quick``: a
tiny one) and a short sentence per request.

  soak        ``--clients`` closed-loop clients (200) for ``--minutes`` (10) against a serverless
              endpoint with ``max_concurrency`` 200, then the same against a dedicated endpoint that
              autoscales (cpu-small, 1 to 8 replicas, target concurrency 4). Per minute: requests,
              errors by status, p50/p99. Every ``--interval`` s (10): the server's and the replicas'
              resident memory, the server's open file descriptors and threads, the replica count, the
              load average. After the first ``--warmup-minutes``, a least-squares slope of each memory
              series in MB per minute.
  cap         the serverless soak for ``--compare-minutes`` on a server with the cap (the default,
              ``replica_cpu_oversubscription`` 2) and on one without it (oversubscription 1000: one
              replica per 4 in-flight invocations, as before issue 21): throughput, p50/p99, replicas,
              memory, load average, side by side in one run.
  overload    a serverless endpoint with ``max_concurrency`` ``--capacity`` (16): 1 client for 20 s
              (unloaded), ``--capacity`` clients for 60 s (at capacity: the throughput it sustains),
              then an open loop at 5x that throughput for 60 s. Every refusal must be a 429 with
              Retry-After answered at once; no 5xx; the admitted requests' p99 within 2x its value at
              capacity (the endpoint loaded to its limit, not past it) and, printed beside, the
              1-client p99.

PASS/FAIL (exit 1 on FAIL): no errors but 429s in the soaks; memory slopes under ``--max-slope`` MB
per minute (1; ``--quick``: 20, a minute is too short to tell less); descriptors and threads flat
(the highest count in the last third of the samples after warm-up at most ``--max-fd-spread`` and 8
above the highest in the first third: pooled store connections and sockets come and go, a leak only grows); the overload's refusals are all 429s
with Retry-After, none slower than 1 s, and the admitted p99 within 2x. Clients run in their own
process (asyncio streams, keep-alive, one pre-encoded POST); a client that gets a 429 waits its
Retry-After, as boto3 and huggingface_hub do.

    flock /tmp/hubserve-bench.lock .venv/bin/python benchmarks/soak.py [--quick] [--minutes 10] [--clients 200]
        [--compare-minutes 3] [--capacity 16] [--only soak,cap,overload] [--no-docs]

``--quick`` (the serverless soak for 60 s with 20 clients on the tiny model, and the overload on a
handler that sleeps 50 ms; never writes the docs) runs in tests/test_benchmark_soak.py and fails on a leak.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    REPO_DIR,
    build_distilbert_sst2,
    deploy,
    percentile,
    replace_section,
    save_with_tokenizer,
    start_server,
    stop_process,
)

HEADING = "## Soak, replica cap and overload (issue 21)"
SENTENCE = {"inputs": "the film was a pleasant surprise from start to end"}
SERVERLESS = {"type": "serverless", "memory_mb": 2048, "max_concurrency": 200, "idle_timeout_s": 600}
DEDICATED = {"type": "dedicated", "instance": "cpu-small", "min_replicas": 1, "max_replicas": 8,
             "target_concurrency": 4}  # fmt: skip
UNCAPPED = {"HUBSERVE_REPLICA_CPU_OVERSUBSCRIPTION": "1000"}
SLOW_HANDLER = '''"""50 ms an answer, no CPU: a sharp capacity for --quick's overload (the tiny model's is the HTTP layer's)."""
import time


class EndpointHandler:
    def __init__(self, path: str = "") -> None:
        self.path = path

    def __call__(self, data: dict) -> list:
        time.sleep(0.05)
        return [{"label": "POSITIVE", "score": 1.0}]
'''


# -- the model --------------------------------------------------------------------------------


def build_tiny_classifier(dst: Path) -> Path:
    """Two layers, 64 wide: the same code path as DistilBERT at a fraction of the compute."""
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(0)
    config = DistilBertConfig(n_layers=2, dim=64, hidden_dim=128, n_heads=2, num_labels=2,
                              id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1})  # fmt: skip
    return save_with_tokenizer(DistilBertForSequenceClassification(config), dst)


# -- the clients (their own process) ----------------------------------------------------------


async def _closed_loop_clients(url: str, body: bytes, clients: int, seconds: float) -> list[tuple[float, float, int]]:
    """(finished at, latency ms, status) of every request of ``clients`` closed-loop clients."""
    from hubserve.loadtest.driver import Connection, Plan

    plan = Plan(url=url, body=body, concurrency=clients, timeout=300.0)
    records: list[tuple[float, float, int]] = []
    began = time.perf_counter()
    deadline = began + seconds

    async def client() -> None:
        connection = Connection(plan)
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                status, headers, _ = await connection.send()
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
                connection.close()
                status, headers = 0, {}
                await asyncio.sleep(0.05)
            finished = time.perf_counter()
            records.append((finished - began, (finished - started) * 1000.0, status))
            if status == 429:
                await asyncio.sleep(float(headers.get(b"retry-after", b"1")))
        connection.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return records


async def _open_loop(url: str, body: bytes, rate: float, seconds: float) -> list[tuple[float, float, int, bool]]:
    """(due at, latency from due ms, status, had Retry-After) of arrivals at ``rate`` per second."""
    from hubserve.loadtest.driver import Connection, Plan

    plan = Plan(url=url, body=body, timeout=300.0)
    idle: list[Connection] = []
    records: list[tuple[float, float, int, bool]] = []
    tasks: set[asyncio.Task[None]] = set()
    began = time.perf_counter()

    async def fire(due: float) -> None:
        connection = idle.pop() if idle else Connection(plan)
        for attempt in (1, 2):  # a kept-alive connection the server closed while idle is retried once, as clients do
            try:
                status, headers, _ = await connection.send()
                break
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
                connection.close()
                if attempt == 2:
                    records.append((due - began, (time.perf_counter() - due) * 1000.0, 0, False))
                    return
        records.append((due - began, (time.perf_counter() - due) * 1000.0, status, b"retry-after" in headers))
        idle.append(connection)

    sent = 0
    while (due := began + sent / rate) < began + seconds:
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(fire(due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += 1
    if tasks:
        await asyncio.gather(*tasks)
    for connection in idle:
        connection.close()
    return records


def client_main(order_path: str) -> None:
    """``soak.py _client ORDER.json``: run one load and write its records next to the order."""
    from hubserve.loadtest.driver import use_uvloop

    order = json.loads(Path(order_path).read_text())
    use_uvloop()
    body = json.dumps(order["body"]).encode()
    if order["rate"] > 0:
        records: Any = asyncio.run(_open_loop(order["url"], body, order["rate"], order["seconds"]))
    else:
        records = asyncio.run(_closed_loop_clients(order["url"], body, order["clients"], order["seconds"]))
    Path(order["out"]).write_text(json.dumps(records))


def run_clients(url: str, seconds: float, clients: int = 0, rate: float = 0.0, folder: Path | None = None) -> list[Any]:
    folder = folder or Path(tempfile.mkdtemp(prefix="soak-client-"))
    order = folder / f"order-{time.monotonic_ns()}.json"
    out = order.with_suffix(".out.json")
    order.write_text(json.dumps({"url": url, "body": SENTENCE, "clients": clients, "rate": rate, "seconds": seconds,
                                 "out": str(out)}))  # fmt: skip
    subprocess.run([sys.executable, __file__, "_client", str(order)], check=True, timeout=seconds + 600)
    records: list[Any] = json.loads(out.read_text())
    order.unlink()
    out.unlink()
    return records


# -- sampling the server from outside ----------------------------------------------------------


@dataclasses.dataclass
class Sample:
    at_s: float
    server_mb: float
    replicas_mb: float  # all replicas together
    replicas: int
    server_fds: int
    server_threads: int
    load_average: float


def _status_field(pid: int, name: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return float(line.split()[1])
    return 0.0


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def replica_pids(server: int) -> list[int]:
    """Every process under the server but the zygotes themselves: replicas forked from a zygote or started fresh."""
    pids, frontier = [], _children(server)
    while frontier:
        pid = frontier.pop()
        frontier += _children(pid) if Path(f"/proc/{pid}").exists() else []
        if "zygote" not in _cmdline(pid) or _status_field(pid, "PPid") != server:
            pids.append(pid)
    return pids


def sample(server: int, began: float) -> Sample:
    replicas_mb, replicas = 0.0, 0
    for pid in replica_pids(server):
        try:
            replicas_mb += _status_field(pid, "VmRSS") / 1024
            replicas += 1
        except OSError:
            continue  # retired meanwhile
    return Sample(
        at_s=time.monotonic() - began,
        server_mb=_status_field(server, "VmRSS") / 1024,
        replicas_mb=replicas_mb,
        replicas=replicas,
        server_fds=len(os.listdir(f"/proc/{server}/fd")),
        server_threads=int(_status_field(server, "Threads")),
        load_average=os.getloadavg()[0],
    )


class sampler:
    """``with sampler(pid, every_s) as samples:`` a thread that samples the server until the block ends."""

    def __init__(self, server: int, every_s: float) -> None:
        self.server, self.every_s, self.samples = server, every_s, list[Sample]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> list[Sample]:
        self._began = time.monotonic()
        self._thread.start()
        return self.samples

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.samples.append(sample(self.server, self._began))
            if self._stop.wait(self.every_s):
                return


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) in MB per minute; 0 with fewer than 3 points."""
    if len(points) < 3:
        return 0.0
    xs, ys = [x / 60 for x, _ in points], [y for _, y in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread if spread else 0.0


# -- the parts ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Soak:
    name: str
    records: list[tuple[float, float, int]]
    samples: list[Sample]
    warmup_s: float

    @property
    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for _, _, status in self.records:
            counts[status] = counts.get(status, 0) + 1
        return counts

    @property
    def errors(self) -> int:
        """Anything but 200 and the documented 429."""
        return sum(n for status, n in self.statuses.items() if status not in (200, 429))

    def steady(self) -> list[tuple[float, float, int]]:
        return [record for record in self.records if record[0] >= self.warmup_s]

    def throughput(self) -> float:
        steady = [r for r in self.steady() if r[2] == 200]
        span = max((r[0] for r in self.records), default=0.0) - self.warmup_s
        return len(steady) / span if span > 0 else float("nan")

    def latency(self, q: float) -> float:
        """The steady answers' latency at quantile ``q`` (0..1)."""
        return percentile([r[1] for r in self.steady() if r[2] == 200], q)

    def later_samples(self) -> list[Sample]:
        return [s for s in self.samples if s.at_s >= self.warmup_s]

    def slopes(self) -> dict[str, float]:
        later = self.later_samples()
        per_replica = [(s.at_s, s.replicas_mb / s.replicas) for s in later if s.replicas]
        return {"server": slope_per_minute([(s.at_s, s.server_mb) for s in later]),
                "replica": slope_per_minute(per_replica)}  # fmt: skip

    def spreads(self) -> dict[str, int]:
        """Growth of descriptors and threads: the last third's highest over the first third's (after warm-up).

        Not max - min: the store's pooled connections (3 descriptors each) and the clients' sockets come and
        go under load; a leak keeps growing, so the end stands above the start."""
        later = self.later_samples() or self.samples
        third = max(1, len(later) // 3)
        first, last = later[:third], later[-third:]
        return {
            "fds": max(s.server_fds for s in last) - max(s.server_fds for s in first),
            "threads": max(s.server_threads for s in last) - max(s.server_threads for s in first),
        }

    def per_minute(self) -> list[dict[str, Any]]:
        rows = []
        minutes = max(1, round(max((r[0] for r in self.records), default=0) / 60))  # the last in-flight answers
        for minute in range(minutes):  # finish after the end: they count in the last minute
            inside = [r for r in self.records if min(int(r[0] // 60), minutes - 1) == minute]
            ok = [r[1] for r in inside if r[2] == 200]
            rows.append({"minute": minute + 1, "requests": len(inside), "ok": len(ok),
                         "429": sum(1 for r in inside if r[2] == 429),
                         "errors": sum(1 for r in inside if r[2] not in (200, 429)),
                         "p50": percentile(ok, 0.5) if ok else float("nan"),
                         "p99": percentile(ok, 0.99) if ok else float("nan")})  # fmt: skip
        return rows


def soak(name: str, compute: dict[str, Any], model: Path, args: argparse.Namespace, seconds: float,
         env: dict[str, str] | None = None) -> Soak:  # fmt: skip
    """One endpoint on a fresh server under ``args.clients`` clients for ``seconds``, sampled from outside."""
    with tempfile.TemporaryDirectory(prefix=f"soak-{name}-") as home:
        process, url = start_server(Path(home) / "home", env=env, log=Path(home) / "server.log")
        try:
            deploy(url, {"name": name, "model": {"source": str(model), "task": "text-classification"}, "compute": compute})
            run_clients(f"{url}/endpoints/{name}", 3, clients=2, folder=Path(home))  # first replica warm
            with sampler(process.pid, args.interval) as samples:
                records = run_clients(f"{url}/endpoints/{name}", seconds, clients=args.clients, folder=Path(home))
        finally:
            stop_process(process)
    return Soak(name, records, samples, warmup_s=min(args.warmup_minutes * 60, seconds / 3))


@dataclasses.dataclass
class Overload:
    capacity: int
    unloaded: list[tuple[float, float, int]]
    at_capacity: list[tuple[float, float, int]]
    rate: float
    over: list[tuple[float, float, int, bool]]

    def p99(self, records: Sequence[Sequence[Any]]) -> float:
        admitted = [r[1] for r in records if r[2] == 200]
        return percentile(admitted, 0.99) if admitted else float("nan")

    @property
    def refused(self) -> list[tuple[float, float, int, bool]]:
        return [r for r in self.over if r[2] != 200]

    def checks(self) -> dict[str, bool]:
        refused = self.refused
        return {
            "refusals are 429 with Retry-After": all(r[2] == 429 and r[3] for r in refused),
            "no 5xx": not any(r[2] >= 500 or r[2] == 0 for r in self.over),
            "429s at once (<1 s)": all(r[1] < 1000 for r in refused),
            "admitted p99 within 2x at capacity": self.p99(self.over) <= 2 * self.p99(self.at_capacity),
        }


def overload(model: Path, args: argparse.Namespace) -> Overload:
    """``model``'s endpoint at ``max_concurrency`` ``args.capacity``: unloaded, at capacity, then 5x it."""
    capacity = args.capacity
    compute = {"type": "serverless", "memory_mb": 2048, "max_concurrency": capacity, "idle_timeout_s": 600}
    spec = {"name": "flood", "model": {"source": str(model), "task": "text-classification"}, "compute": compute,
            "custom_code": (model / "handler.py").exists()}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="soak-overload-") as home:
        process, url = start_server(Path(home) / "home", log=Path(home) / "server.log")
        try:
            deploy(url, spec)
            target = f"{url}/endpoints/flood"
            run_clients(target, 5, clients=capacity, folder=Path(home))  # replicas up to the cap, warm
            unloaded = run_clients(target, args.phase_s / 3, clients=1, folder=Path(home))
            at_capacity = run_clients(target, args.phase_s, clients=capacity, folder=Path(home))
            throughput = sum(1 for r in at_capacity if r[2] == 200) / args.phase_s
            over = run_clients(target, args.phase_s, rate=5 * throughput, folder=Path(home))
        finally:
            stop_process(process)
    return Overload(capacity, unloaded, at_capacity, 5 * throughput, over)


# -- the report --------------------------------------------------------------------------------


def soak_table(result: Soak) -> str:
    lines = [f"**{result.name}**: {sum(result.statuses.values())} requests, statuses {dict(sorted(result.statuses.items()))}",
             "", "| minute | requests | ok | 429 | errors | p50 ms | p99 ms |", "|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for row in result.per_minute():
        lines.append(f"| {row['minute']} | {row['requests']} | {row['ok']} | {row['429']} | {row['errors']} | "
                     f"{row['p50']:.0f} | {row['p99']:.0f} |")  # fmt: skip
    later = result.later_samples() or result.samples
    slopes, spreads = result.slopes(), result.spreads()
    lines += [
        "",
        (f"After {result.warmup_s:.0f} s of warm-up: server memory {min(s.server_mb for s in later):.0f} to "
        f"{max(s.server_mb for s in later):.0f} MB (slope {slopes['server']:+.2f} MB/min), memory per replica slope "
        f"{slopes['replica']:+.2f} MB/min, replicas {min(s.replicas for s in later)} to {max(s.replicas for s in later)} "
        f"({max(s.replicas_mb for s in later):.0f} MB together at most), server descriptors "
        f"{min(s.server_fds for s in later)} to {max(s.server_fds for s in later)} (growth {spreads['fds']:+d}), threads "
        f"{min(s.server_threads for s in later)} to {max(s.server_threads for s in later)} "
        f"(growth {spreads['threads']:+d}), load average max {max(s.load_average for s in later):.1f}; "
        f"{result.throughput():.1f} answers/s, p50 {result.latency(0.5):.0f} ms, p99 {result.latency(0.99):.0f} ms."),
    ]
    return "\n".join(lines)


def cap_table(capped: Soak, uncapped: Soak) -> str:
    lines = ["| server | answers/s | p50 ms | p99 ms | errors | replicas max | replicas MB max | load average max |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for label, result in (("capped (default: cores x 2)", capped), ("uncapped (before issue 21)", uncapped)):
        samples = result.samples
        lines.append(f"| {label} | {result.throughput():.1f} | {result.latency(0.5):.0f} | {result.latency(0.99):.0f} | "
                     f"{result.errors} | {max(s.replicas for s in samples)} | {max(s.replicas_mb for s in samples):.0f} | "
                     f"{max(s.load_average for s in samples):.1f} |")  # fmt: skip
    lines.append("")
    lines.append(f"Capped against uncapped: throughput x{capped.throughput() / uncapped.throughput():.2f}, "
                 f"p99 x{capped.latency(0.99) / uncapped.latency(0.99):.2f}.")  # fmt: skip
    return "\n".join(lines)


def overload_table(result: Overload) -> str:
    refused = result.refused
    admitted = [r for r in result.over if r[2] == 200]
    waits = [r[1] for r in refused] or [0.0]
    lines = [
        (f"max_concurrency {result.capacity}; open loop at {result.rate:.0f} arrivals/s (5x the {result.rate / 5:.1f}/s "
        f"sustained at capacity): {len(result.over)} arrivals, {len(admitted)} admitted, {len(refused)} refused "
        f"({sorted({r[2] for r in refused})}); refusals answered in p50 {percentile(waits, 0.5):.1f} ms, p99 "
        f"{percentile(waits, 0.99):.1f} ms, slowest {max(waits):.0f} ms."),
        "",
        "| load | p50 ms | p99 ms |",
        "|---|---:|---:|",
        (f"| 1 client (unloaded) | {percentile([r[1] for r in result.unloaded if r[2] == 200], 0.5):.0f} | "
        f"{result.p99(result.unloaded):.0f} |"),
        (f"| {result.capacity} clients (at capacity) | "
        f"{percentile([r[1] for r in result.at_capacity if r[2] == 200], 0.5):.0f} | {result.p99(result.at_capacity):.0f} |"),
        f"| 5x capacity, admitted | {percentile([r[1] for r in admitted], 0.5):.0f} | {result.p99(result.over):.0f} |",
        "",
        "Checks: " + ", ".join(f"{name}: {'PASS' if ok else 'FAIL'}" for name, ok in result.checks().items()) + ".",
    ]
    return "\n".join(lines)


def soak_checks(result: Soak, args: argparse.Namespace) -> dict[str, bool]:
    slopes, spreads = result.slopes(), result.spreads()
    return {
        f"{result.name}: no errors but 429": result.errors == 0,
        f"{result.name}: server memory flat": slopes["server"] < args.max_slope,
        f"{result.name}: replica memory flat": slopes["replica"] < args.max_slope,
        f"{result.name}: descriptors flat": spreads["fds"] <= args.max_fd_spread,
        f"{result.name}: threads flat": spreads["threads"] <= 8,
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="60 s, 20 clients, the tiny model; soak and overload")
    parser.add_argument("--minutes", type=float, default=None, help="each soak; default 10 (--quick: 1)")
    parser.add_argument("--clients", type=int, default=None, help="default 200 (--quick: 20)")
    parser.add_argument("--compare-minutes", type=float, default=3.0, help="capped against uncapped, each")
    parser.add_argument("--capacity", type=int, default=None, help="overload endpoint's max_concurrency; default 16 (--quick: 4)")
    parser.add_argument("--phase-s", type=float, default=None, help="overload phases; default 60 (--quick: 15)")
    parser.add_argument("--interval", type=float, default=None, help="sampling, s; default 10 (--quick: 2)")
    parser.add_argument("--warmup-minutes", type=float, default=2.0)
    parser.add_argument("--max-slope", type=float, default=None, help="MB/min; default 1 (--quick: 20)")
    parser.add_argument("--max-fd-spread", type=int, default=None, help="default 16 (--quick: 24)")
    parser.add_argument("--only", default=None, help="comma-separated parts: soak, cap, overload")
    parser.add_argument("--docs", type=Path, default=REPO_DIR / "docs" / "reliability.md")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args(argv)
    quick = args.quick
    args.minutes = args.minutes or (1.0 if quick else 10.0)
    args.clients = args.clients or (20 if quick else 200)
    args.capacity = args.capacity or (4 if quick else 16)
    args.phase_s = args.phase_s or (15.0 if quick else 60.0)
    args.interval = args.interval or (2.0 if quick else 10.0)
    args.max_slope = args.max_slope if args.max_slope is not None else (20.0 if quick else 1.0)
    args.max_fd_spread = args.max_fd_spread if args.max_fd_spread is not None else (24 if quick else 16)
    args.parts = set((args.only or ("soak,overload" if quick else "soak,cap,overload")).split(","))
    if quick:
        args.warmup_minutes = min(args.warmup_minutes, 0.25)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sections: list[str] = []
    checks: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="soak-model-") as folder:
        model = (build_tiny_classifier if args.quick else build_distilbert_sst2)(Path(folder) / "classifier")
        if "soak" in args.parts:
            kinds = (("serverless", SERVERLESS),) if args.quick else (("serverless", SERVERLESS), ("dedicated", DEDICATED))
            for name, compute in kinds:
                result = soak(name, compute, model, args, args.minutes * 60)
                sections.append(soak_table(result))
                checks.update(soak_checks(result, args))
                print(sections[-1], flush=True)
        if "cap" in args.parts:
            seconds = args.compare_minutes * 60
            capped = soak("capped", SERVERLESS, model, args, seconds)
            uncapped = soak("uncapped", SERVERLESS, model, args, seconds, env=UNCAPPED)
            sections.append(cap_table(capped, uncapped))
            checks["cap: more answers/s than uncapped"] = capped.throughput() > uncapped.throughput()
            checks["cap: lower p99 than uncapped"] = capped.latency(0.99) < uncapped.latency(0.99)
            print(sections[-1], flush=True)
        if "overload" in args.parts:
            slow = Path(folder) / "slow"
            if args.quick:
                slow.mkdir()
                (slow / "handler.py").write_text(SLOW_HANDLER)
            flood = overload(slow if args.quick else model, args)
            sections.append(overload_table(flood))
            checks.update({f"overload: {name}": ok for name, ok in flood.checks().items()})
            print(sections[-1], flush=True)
    verdict = "\n".join(f"- {name}: {'PASS' if ok else 'FAIL'}" for name, ok in checks.items())
    print(verdict)
    if not args.quick and not args.no_docs:
        command = "flock /tmp/hubserve-bench.lock .venv/bin/python benchmarks/soak.py " + " ".join(argv or sys.argv[1:])
        machine = f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1024**3:.0f} GiB"
        body = (f"Measured {time.strftime('%Y-%m-%d')} on {machine} with `{command.strip()}`; {args.clients} clients, "
                f"{args.minutes:g} min per soak.\n\n" + "\n\n".join(sections) + "\n\n" + verdict)  # fmt: skip
        replace_section(args.docs, "soak", body, HEADING)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "_client":
        client_main(sys.argv[2])
    else:
        sys.exit(main())
