"""Issue 18: many models behind one multi-model endpoint against one scale-to-zero endpoint per model.

Models: one DistilBERT SST-2-shaped text classifier (random weights, ~255 MB safetensors, the real
BERT-uncased tokenizer) copied ``--models`` times under other labels (real copies of the weights by
default, so every model's load reads its own file; ``--link`` hard-links the weights to save disk,
which shares the page cache between models and flatters loads). A fixed-seed sequence of ``--calls``
calls is drawn from a Zipf distribution over the models' ranks (``--zipf-s``), each a 128-token
request, sent by ``--concurrency`` clients, closed loop. Two systems on one ``hubserve serve``,
measured one after the other:
  multi-model  one dedicated cpu-medium endpoint (one replica, 4096 MB), ``model.multi_model: true``,
               ``models_memory_mb`` room for ``--resident`` models (that many + 0.5 times the weights);
               each call names its model (``POST /endpoints/NAME/models/MODEL``)
  per model    one serverless endpoint per model (2048 MB, scaled to zero after ``--idle-timeout`` s
               idle), the same sequence (or its first ``--baseline-calls``)
Per call: latency at the client and whether it was cold. Multi-model: the replica's counters (hits,
misses) before and after say how many calls waited for a load; that many slowest calls are the cold
ones. Per model: the ``x-cold-start`` header. Memory: the resident memory of every replica process
of the server (never the gateway or the zygote), read from /proc every 0.5 s, and for the
multi-model endpoint its own account (``used_mb`` of the models listing). The check (PASS/FAIL, exit
1 on FAIL): the multi-model replica's memory above what it held with no model (after a warm-up model was called and removed) never passed
``models_memory_mb``, its own account never did either, and the replica never passed its memory size.

    flock /tmp/hubserve-bench.lock .venv/bin/python benchmarks/multi_model.py [--models 20] [--resident 5] \
        [--calls 10000] [--baseline-calls N] [--zipf-s 1.1] [--concurrency 4] [--link] [--quick] [--no-docs]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    REPO_DIR,
    SST2_LABELS,
    Stats,
    build_distilbert_sst2,
    endpoint,
    free_port,
    in_child,
    machine_line,
    markdown_table,
    others_meter,
    print_table,
    replace_section,
    running,
    save_with_tokenizer,
    text_of_tokens,
)

os.environ["HUBSERVE_REPLICA_USER"] = ""  # the fixtures are in a private temp folder (see common.py)
TASK = "text-classification"
MME = "mme"
INSTANCE, INSTANCE_MB = "cpu-medium", 4096
SAMPLE_S = 0.5
HEADING = "## Multi-model endpoints: many models in one replica's memory"


# -- models -------------------------------------------------------------------------------------


def build_small_distilbert(dst: Path) -> Path:
    """--quick's model: DistilBERT's shape at 2 layers, 256 wide (~38 MB), the same tokenizer."""
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    torch.manual_seed(0)
    config = DistilBertConfig(n_layers=2, dim=256, hidden_dim=1024, n_heads=4, num_labels=2, id2label=SST2_LABELS,
                              label2id={v: k for k, v in SST2_LABELS.items()})  # fmt: skip
    return save_with_tokenizer(DistilBertForSequenceClassification(config), dst)


def model_names(count: int) -> list[str]:
    """Rank order: the first is the most called."""
    return [f"m{rank:02d}" for rank in range(1, count + 1)]


def make_models(base: Path, root: Path, names: Sequence[str], *, link: bool) -> None:
    """``names`` copies of ``base`` in ``root``, each with its own labels (an answer says which model gave it);
    the weights copied, or hard-linked with ``link``."""
    for name in names:
        dst = root / name
        dst.mkdir(parents=True)
        for src in base.iterdir():
            if src.name == "config.json":
                config = json.loads(src.read_text())
                labels = (f"{name}-neg", f"{name}-pos")
                config["id2label"] = dict(enumerate(labels))
                config["label2id"] = {label: i for i, label in enumerate(labels)}
                (dst / src.name).write_text(json.dumps(config))
            elif link and src.suffix == ".safetensors":
                os.link(src, dst / src.name)
            else:
                shutil.copyfile(src, dst / src.name)


def weights_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 2**20


def zipf_sequence(count: int, calls: int, s: float, seed: int = 18) -> list[int]:
    """``calls`` model ranks (0-based) drawn with probability proportional to 1 / (rank + 1) ** s."""
    weights = [1 / (rank**s) for rank in range(1, count + 1)]
    return random.Random(seed).choices(range(count), weights=weights, k=calls)


# -- calls ------------------------------------------------------------------------------------------


@dataclass
class Call:
    """One call as the client saw it."""

    model: int
    latency_ms: float
    status: int
    cold: bool = False  # per model: the x-cold-start header; multi-model: set from the counters afterwards
    model_ms: float = float("nan")  # hubserve's x-model-latency-ms: inside the replica's predictor
    overhead_ms: float = float("nan")  # x-overhead-latency-ms: the rest, a wait for a load or a replica included


def send_all(
    base: str, paths: Sequence[str], sequence: Sequence[int], body: dict[str, Any], concurrency: int
) -> list[Call]:
    """Send ``sequence`` in its order from ``concurrency`` clients (closed loop: each sends, waits, sends the next)."""
    calls: list[Call | None] = [None] * len(sequence)
    counter = itertools.count()
    payload = json.dumps(body).encode()
    headers = {"content-type": "application/json"}

    def client() -> None:
        with httpx.Client(base_url=base, timeout=600) as http:
            while (index := next(counter)) < len(sequence):
                model = sequence[index]
                started = time.perf_counter()
                response = http.post(paths[model], content=payload, headers=headers)
                latency = (time.perf_counter() - started) * 1000
                answer = response.headers
                cold = answer.get("x-cold-start", "").lower() == "true"
                calls[index] = Call(model, latency, response.status_code, cold, float(answer.get("x-model-latency-ms", "nan")),
                                    float(answer.get("x-overhead-latency-ms", "nan")))  # fmt: skip

    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(client) for _ in range(concurrency)]:
            future.result()
    return [call for call in calls if call is not None]


def mark_coldest(calls: list[Call], cold: int) -> None:
    """The ``cold`` slowest calls waited for a load (the replica's count); the others found their model."""
    for call in sorted(calls, key=lambda c: c.latency_ms, reverse=True)[:cold]:
        call.cold = True


# -- memory --------------------------------------------------------------------------------------


def worker_pids(root: int) -> dict[int, str]:
    """The server ``root``'s replica processes (``python -m hubserve.worker ...``) and its zygote, by pid."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
    tree: set[int] = set()
    frontier = [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier and pid not in tree]
        tree.update(frontier)
    found = {}
    for pid in tree:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        module = argv[argv.index(b"-m") + 1] if b"-m" in argv[:-1] else b""
        if module in (b"hubserve.worker", b"hubserve.worker.zygote"):
            found[pid] = "zygote" if module.endswith(b"zygote") else "replica"
    return found


def replica_pids(root: int) -> list[int]:
    return [pid for pid, kind in worker_pids(root).items() if kind == "replica"]


def rss_mb(pid: int) -> float:
    """Resident memory, as the memory police reads it (shared pages counted in every process that maps them)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0  # gone meanwhile


def pss_mb(pid: int) -> float:
    """Proportional set size: each shared page split between the processes that map it (the zygote's imports)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0.0


@dataclass
class Sample:
    at: float
    replicas: int
    rss_mb: float  # the replicas' resident memory, summed
    pss_mb: float  # the replicas' and the zygote's proportional memory, summed: what serving holds
    used_mb: float | None = None  # the multi-model replica's own account of its models


class MemorySampler:
    """``with MemorySampler(server_pid, account) as sampler:`` the replicas' memory every 0.5 s meanwhile,
    and every replica process seen (a replica lives at least its idle timeout, far longer than 0.5 s)."""

    def __init__(self, root: int, account: Callable[[], float | None] | None = None) -> None:
        self.root, self.account = root, account
        self.samples: list[Sample] = []
        self.replicas_seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            workers = worker_pids(self.root)
            replicas = [pid for pid, kind in workers.items() if kind == "replica"]
            self.replicas_seen.update(replicas)
            used = self.account() if self.account is not None else None
            self.samples.append(Sample(time.monotonic() - started, len(replicas), sum(rss_mb(pid) for pid in replicas),
                                       sum(pss_mb(pid) for pid in workers), used))  # fmt: skip
            self._stop.wait(SAMPLE_S)


# -- the two systems ----------------------------------------------------------------------------


@dataclass
class Result:
    """One system's run."""

    system: str
    calls: list[Call]
    wall_s: float
    samples: list[Sample]
    loads: int = 0
    unloads: int = 0
    hits: int = 0
    misses: int = 0
    load_s_mean: float = float("nan")
    idle_rss_mb: float = float("nan")  # multi-model: the replica with no model loaded, after a warm-up
    budget_mb: float = float("nan")
    extra: dict[str, Any] = field(default_factory=dict)

    def latency(self, cold: bool | None = None) -> Stats:
        return Stats.of([c.latency_ms for c in self.calls if c.status == 200 and (cold is None or c.cold == cold)])

    def split(self, cold: bool) -> tuple[float, float]:
        """Medians of hubserve's model and overhead latency headers over the hot (or cold) calls."""
        chosen = [c for c in self.calls if c.status == 200 and c.cold == cold]
        return Stats.of([c.model_ms for c in chosen]).p50, Stats.of([c.overhead_ms for c in chosen]).p50

    @property
    def cold_calls(self) -> int:
        return sum(c.cold for c in self.calls)

    @property
    def errors(self) -> int:
        return sum(c.status != 200 for c in self.calls)

    def memory(self, kind: str = "pss_mb") -> tuple[float, float]:
        """Max and mean over the run (MB) of the samples' ``rss_mb`` or ``pss_mb``."""
        values = [getattr(s, kind) for s in self.samples] or [float("nan")]
        return max(values), sum(values) / len(values)


def _counters(http: httpx.Client) -> dict[str, int]:
    models = http.get(f"/v1/endpoints/{MME}/models").raise_for_status().json()["models"]
    return {key: sum(m[key] for m in models) for key in ("loads", "unloads", "hits", "misses")}


def _load_seconds(http: httpx.Client) -> tuple[float, int]:
    """Sum and count of the model loads' seconds, from the Prometheus histogram."""
    total, count = 0.0, 0
    for line in http.get("/metrics").raise_for_status().text.splitlines():
        if line.startswith("hubserve_multi_model_load_seconds_sum") and f'endpoint="{MME}"' in line:
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("hubserve_multi_model_load_seconds_count") and f'endpoint="{MME}"' in line:
            count += int(float(line.rsplit(" ", 1)[1]))
    return total, count


def warmed_idle_rss(http: httpx.Client, server_pid: int, root: Path, model: str, body: dict[str, Any]) -> float:
    """The replica's memory with no model loaded, once it has paid its one-time costs: a throwaway copy of
    ``model`` is called (lazy imports, allocator arenas, kernels' first run), its folder removed, and its next
    call (404) unloads it, returning its memory, as removing a model from a live endpoint does."""
    warmup = root / "warmup"
    shutil.copytree(root / model, warmup)
    try:
        http.post(f"/endpoints/{MME}/models/warmup", json=body).raise_for_status()
    finally:
        shutil.rmtree(warmup)
    gone = http.post(f"/endpoints/{MME}/models/warmup", json=body)
    if gone.status_code != 404:
        raise RuntimeError(f"a removed model answered {gone.status_code}, not 404: {gone.text[:200]}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the replica reports the unload within 50 ms
        replicas = http.get(f"/v1/endpoints/{MME}/models").raise_for_status().json()["replicas"]
        if replicas and all(r["used_mb"] == 0 for r in replicas.values()):
            break
        time.sleep(0.1)
    else:
        raise RuntimeError("the removed warm-up model was not unloaded within 10 s")
    time.sleep(1.0)
    return sum(rss_mb(pid) for pid in replica_pids(server_pid))


def measure_multi_model(base: str, server_pid: int, root: Path, names: list[str], sequence: list[int],
                        body: dict[str, Any], args: argparse.Namespace, budget_mb: int) -> Result:  # fmt: skip
    spec = {"name": MME, "model": {"source": str(root), "task": TASK, "multi_model": True, "models_memory_mb": budget_mb},
            "compute": {"type": "dedicated", "instance": INSTANCE, "min_replicas": 1, "max_replicas": 1}}  # fmt: skip
    with endpoint(base, spec), httpx.Client(base_url=base, timeout=60) as http:
        idle_rss = warmed_idle_rss(http, server_pid, root, names[0], body)
        before, (load_sum0, load_n0) = _counters(http), _load_seconds(http)

        def account() -> float | None:
            try:
                replicas = http.get(f"/v1/endpoints/{MME}/models").json()["replicas"]
            except (httpx.HTTPError, ValueError, KeyError):
                return None
            return max((r["used_mb"] for r in replicas.values()), default=0.0)

        paths = [f"/endpoints/{MME}/models/{name}" for name in names]
        with MemorySampler(server_pid, account) as sampler, others_meter() as others:
            started = time.perf_counter()
            calls = send_all(base, paths, sequence, body, args.concurrency)
            wall = time.perf_counter() - started
        time.sleep(0.5)  # the replica reports its counters within 50 ms of a change
        after, (load_sum1, load_n1) = _counters(http), _load_seconds(http)
    counts = {key: after[key] - before[key] for key in after}
    mark_coldest(calls, counts["misses"])
    loads = load_n1 - load_n0
    return Result("multi-model", calls, wall, sampler.samples, counts["loads"], counts["unloads"], counts["hits"],
                  counts["misses"], (load_sum1 - load_sum0) / loads if loads else float("nan"), idle_rss, budget_mb,
                  {"others_percent": others.percent})  # fmt: skip


def measure_per_model(base: str, server_pid: int, root: Path, names: list[str], sequence: list[int],
                      body: dict[str, Any], args: argparse.Namespace) -> Result:  # fmt: skip
    specs = [{"name": f"single-{name}", "model": {"source": str(root / name), "task": TASK},
              "compute": {"type": "serverless", "memory_mb": args.serverless_mb, "max_concurrency": args.concurrency,
                          "idle_timeout_s": args.idle_timeout}} for name in names]  # fmt: skip
    with httpx.Client(base_url=base, timeout=600) as http:
        try:
            for spec in specs:
                http.post("/v1/endpoints", json=spec).raise_for_status()
            for spec in specs:
                _wait_running(http, spec["name"])
            for spec in specs:  # every endpoint starts from zero, as after a quiet night
                http.post(f"/v1/endpoints/{spec['name']}/scale-to-zero").raise_for_status()
            _wait_no_replicas(server_pid)
            paths = [f"/endpoints/single-{name}" for name in names]
            with MemorySampler(server_pid) as sampler, others_meter() as others:
                started = time.perf_counter()
                calls = send_all(base, paths, sequence, body, args.concurrency)
                wall = time.perf_counter() - started
        finally:
            for spec in specs:
                http.delete(f"/v1/endpoints/{spec['name']}")
    cold = sum(c.cold for c in calls)
    return Result("per model", calls, wall, sampler.samples, loads=len(sampler.replicas_seen), misses=cold,
                  hits=len(calls) - cold, extra={"others_percent": others.percent})  # fmt: skip


def _wait_running(http: httpx.Client, name: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = http.get(f"/v1/endpoints/{name}").raise_for_status().json()
        if described["state"] == "running":
            return
        if described["state"] == "failed":
            raise RuntimeError(f"endpoint {name} failed: {described.get('failure_reason') or described}")
        time.sleep(0.2)
    raise RuntimeError(f"endpoint {name} did not run within {timeout:.0f}s")


def _wait_no_replicas(server_pid: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while replica_pids(server_pid) and time.monotonic() < deadline:
        time.sleep(0.2)


# -- the report -----------------------------------------------------------------------------------


@dataclass
class Check:
    label: str
    value: str
    ok: bool | None


def checks_for(mme: Result, peer: Result | None) -> list[Check]:
    """The multi-model replica's memory against its budget and its size, then the ratios to the baseline."""
    peak = max((s.rss_mb for s in mme.samples), default=float("nan"))
    accounted = max((s.used_mb for s in mme.samples if s.used_mb is not None), default=float("nan"))
    grown = peak - mme.idle_rss_mb
    checks = [
        Check(f"multi-model: replica memory above idle ({mme.idle_rss_mb:.0f} MB) <= models_memory_mb",
              f"{grown:.0f} / {mme.budget_mb:.0f} MB", grown <= mme.budget_mb),
        Check("multi-model: the replica's own account (used_mb) <= models_memory_mb",
              f"{accounted:.0f} / {mme.budget_mb:.0f} MB", accounted <= mme.budget_mb),
        Check(f"multi-model: replica memory <= its memory size ({INSTANCE})", f"{peak:.0f} / {INSTANCE_MB} MB",
              peak <= INSTANCE_MB),
        Check("multi-model: every call answered 200", f"{mme.errors} errors", mme.errors == 0),
    ]  # fmt: skip
    if peer is not None:
        (peer_max, peer_mean), (mme_max, mme_mean) = peer.memory(), mme.memory()
        (peer_rss, _), (mme_rss, _) = peer.memory("rss_mb"), mme.memory("rss_mb")
        checks += [
            Check("memory (PSS) max, per model / multi-model", f"{peer_max / mme_max:.2f}", None),
            Check("memory (PSS) mean, per model / multi-model", f"{peer_mean / mme_mean:.2f}", None),
            Check("replicas' RSS max, per model / multi-model", f"{peer_rss / mme_rss:.2f}", None),
            Check("loads (replica starts), per model / multi-model", _ratio(peer.loads, mme.loads), None),
            Check("cold calls, per model / multi-model", _ratio(peer.cold_calls, mme.cold_calls), None),
            Check("p99 of all calls, per model / multi-model", f"{peer.latency().p99 / mme.latency().p99:.2f}", None),
            Check("p50 of all calls, per model / multi-model", f"{peer.latency().p50 / mme.latency().p50:.2f}", None),
            Check("per model: every call answered 200", f"{peer.errors} errors", peer.errors == 0),
        ]
    return checks


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "inf"


HEADER = ["system", "calls", "p50 ms", "p99 ms", "hot p50", "hot p99", "cold calls", "cold p50", "cold p99",
          "warm rate", "loads", "unloads", "PSS max MB", "PSS mean MB", "RSS max MB", "wall s"]  # fmt: skip


def rows_for(results: Sequence[Result]) -> list[list[str]]:
    rows = []
    for r in results:
        every, hot, cold = r.latency(), r.latency(cold=False), r.latency(cold=True)
        (peak, mean), (rss, _) = r.memory(), r.memory("rss_mb")
        hit_rate = r.hits / (r.hits + r.misses) if r.hits + r.misses else float("nan")
        unloads = str(r.unloads) if r.system == "multi-model" else "-"
        rows.append([r.system, str(len(r.calls)), f"{every.p50:.0f}", f"{every.p99:.0f}", f"{hot.p50:.0f}", f"{hot.p99:.0f}",
                     str(r.cold_calls), f"{cold.p50:.0f}", f"{cold.p99:.0f}", f"{hit_rate:.1%}", str(r.loads), unloads,
                     f"{peak:.0f}", f"{mean:.0f}", f"{rss:.0f}", f"{r.wall_s:.0f}"])  # fmt: skip
    return rows


def describe_run(args: argparse.Namespace, size_mb: float, budget_mb: int, baseline_calls: int) -> str:
    vcpus = max(1, round(args.serverless_mb / 1769))  # hubserve.spec.vcpus_for: 1 per 1769 MB, as Lambda
    weights = "hard links to one weights file (shared page cache)" if args.link else "real copies of the weights"
    return (f"{args.models} DistilBERT SST-2-shaped models ({size_mb:.0f} MB of weights each, {weights}); multi-model: "
            f"one {INSTANCE} replica ({INSTANCE_MB} MB, 2 vCPUs), models_memory_mb {budget_mb} (room for {args.resident}); "
            f"per model: {args.models} serverless endpoints of {args.serverless_mb} MB ({vcpus} vCPU each), "
            f"max_concurrency {args.concurrency}, idle_timeout_s {args.idle_timeout}. "
            f"{args.calls} calls (per model: the first {baseline_calls}) drawn from Zipf(s={args.zipf_s}) over the "
            f"models' ranks, {args.tokens}-token requests, {args.concurrency} clients, closed loop.")  # fmt: skip


def report(results: Sequence[Result], checks: Sequence[Check], run_line: str, command: str, mme: Result) -> str:
    """Print the table and the checks; return the markdown section for docs/benchmarks.md."""
    rows = rows_for(results)
    print(f"\n{run_line}\n")
    print_table(HEADER, rows, left=1)
    print(f"\nmulti-model: mean load {mme.load_s_mean * 1000:.0f} ms (the replica's own timing of {mme.loads} loads); "
          f"replica with no model, after a warm-up, {mme.idle_rss_mb:.0f} MB\n")  # fmt: skip
    split = "; ".join(f"{r.system}: hot {r.split(False)[0]:.0f} + {r.split(False)[1]:.0f}, "
                      f"cold {r.split(True)[0]:.0f} + {r.split(True)[1]:.0f}" for r in results)  # fmt: skip
    print(f"medians of model + overhead ms (hubserve's headers): {split}")
    busy = ", ".join(f"{r.system} {r.extra.get('others_percent', float('nan')):.0f} %" for r in results)
    print(f"CPU used by other processes on this machine meanwhile, % of one core: {busy}\n")
    for check in checks:
        verdict = "" if check.ok is None else ("PASS" if check.ok else "FAIL")
        print(f"{check.label:<78} {check.value:>18}  {verdict}")
    check_rows = [(c.label, c.value, "" if c.ok is None else ("PASS" if c.ok else "FAIL")) for c in checks]
    notes = ("Latencies in ms at the client. *cold*: multi-model, the calls that waited for their model to load (as many "
             "as the replica counted misses: the slowest ones); per model, the calls that waited for a replica to start "
             "(`x-cold-start: true`). *warm rate*: the other calls' share. *loads*: multi-model, models loaded into the "
             "replica; per model, replicas started. *PSS*: proportional memory of the replicas and the zygote together "
             "(`/proc/PID/smaps_rollup`; a page the zygote shares with N replicas counts 1/(N+1) in each), *RSS*: the "
             "replicas' resident memory summed (the zygote's shared imports counted in every replica, as the memory "
             "police counts them), both sampled every 0.5 s; the gateway is not counted. "
             f"Multi-model: mean model load {mme.load_s_mean * 1000:.0f} ms (the replica's own timing), "
             f"its replica held {mme.idle_rss_mb:.0f} MB RSS with no model loaded (after a throwaway model was called, removed and so unloaded). Medians of model + overhead latency "
             f"(hubserve's `x-model-latency-ms` / `x-overhead-latency-ms`), ms: {split}. CPU that other processes on the "
             f"machine used meanwhile, % of one core: {busy}.")  # fmt: skip
    return "\n\n".join([
        f"Measured {machine_line()}. Command: `{command}`.", run_line,
        markdown_table(HEADER, rows, align=lambda i: "---" if i == 0 else "---:"), notes,
        markdown_table(["check / ratio", "value", "verdict"], check_rows, align=lambda i: "---" if i == 0 else "---:"),
    ])  # fmt: skip


# -- main -------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=None, help="default 20 (--quick: 6)")
    parser.add_argument(
        "--resident", type=int, default=None, help="models the budget holds at once; default 5 (--quick: 2)"
    )
    parser.add_argument("--calls", type=int, default=None, help="default 10000 (--quick: 300)")
    parser.add_argument(
        "--baseline-calls", type=int, default=None, help="per model: the sequence's first N (default all)"
    )
    parser.add_argument("--zipf-s", type=float, default=1.1)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=128, help="tokens per request")
    parser.add_argument(
        "--serverless-mb", type=int, default=2048, help="per model: each serverless endpoint's memory_mb"
    )
    parser.add_argument(
        "--idle-timeout", type=int, default=5, help="per model: idle_timeout_s of each serverless endpoint"
    )
    parser.add_argument("--link", action="store_true", help="hard-link the weights (saves disk; shares the page cache)")
    parser.add_argument("--no-baseline", action="store_true", help="the multi-model endpoint only")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="6 models, 2 resident, 300 calls, a 2-layer 256-wide model (--models, --resident and --calls still apply)",
    )
    parser.add_argument("--docs", type=Path, default=REPO_DIR / "docs" / "benchmarks.md")
    parser.add_argument("--no-docs", action="store_true", help="print only (--quick never writes the docs)")
    args = parser.parse_args(argv)
    for name, full, quick in (("models", 20, 6), ("resident", 5, 2), ("calls", 10_000, 300)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.resident < 1 or args.models <= args.resident:
        parser.error("--resident must be at least 1 and below --models")
    if args.calls < 1 or args.concurrency < 1:
        parser.error("--calls and --concurrency must be at least 1")
    args.baseline_calls = min(args.calls, args.baseline_calls or args.calls)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = "flock /tmp/hubserve-bench.lock .venv/bin/python benchmarks/multi_model.py " + " ".join(sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="mme-bench-") as name:
        tmp = Path(name)
        build = build_small_distilbert if args.quick else build_distilbert_sst2
        base = in_child(build, tmp / "base")
        size_mb = weights_mb(base)
        budget_mb = max(64, int((args.resident + 0.5) * size_mb))
        names = model_names(args.models)
        make_models(base, tmp / "models", names, link=args.link)
        body = {"inputs": text_of_tokens(base, args.tokens)}
        sequence = zipf_sequence(args.models, args.calls, args.zipf_s)
        run_line = describe_run(args, size_mb, budget_mb, args.baseline_calls)
        print(run_line, flush=True)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv_server = [sys.executable, "-m", "hubserve", "serve", "--port", str(port), "--home", str(tmp / "home")]
        with running(argv_server, f"{url}/health", log=tmp / "hubserve.log") as server:
            print("measuring the multi-model endpoint", flush=True)
            mme = measure_multi_model(url, server.pid, tmp / "models", names, sequence, body, args, budget_mb)
            results = [mme]
            print_table(HEADER, rows_for(results), left=1)  # so far: a baseline that fails leaves these figures
            peer = None
            if not args.no_baseline:
                print(f"measuring {args.models} single-model serverless endpoints", flush=True)
                peer = measure_per_model(
                    url, server.pid, tmp / "models", names, sequence[: args.baseline_calls], body, args
                )
                results.append(peer)
        checks = checks_for(mme, peer)
        section = report(results, checks, run_line, command, mme)
    if not args.quick and not args.no_docs:
        replace_section(args.docs, "multi-model", section, HEADING)
        print(f"\nwrote the section multi-model of {args.docs}")
    failed = [c.label for c in checks if c.ok is False]
    if failed:
        print(f"\nFAIL: {'; '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
