"""Batch transform throughput: a hubserve batch job against the same model in-process, in one run.

Both sides run the same model with the same runtime, threads and batch size over the same
records, one after the other (never at once: the machine has 2 cores):
  in-process   hubserve's predictor in a fresh process (``load_model`` as a replica loads it,
               ``threads`` torch/ONNX Runtime threads), ``batching.predict_many`` over every record
               with ``batch_size``: the model's own records/s, no serving at all
  batch job    ``hubserve serve`` and ``POST /v1/batch-jobs`` (through the SDK) over a JSON Lines
               file of the same records, ``--model`` with a cpu-medium replica (2 vCPUs) and the
               same ``batch_size``; records/s as the job reports it (its processing run: from its
               replica being ready to the last committed chunk), and end to end (submit to
               completed, replica start and output assembly included)

Model: DistilBERT SST-2-shaped at full size, random weights, the real BERT-uncased tokenizer
(common.build_distilbert_sst2); records: ``{"inputs": text}`` with 128-token texts (rotations of
one sentence, every one 128 tokens).

    flock /tmp/hubserve-bench.lock .venv/bin/python benchmarks/batch_transform.py \
        [--records 10000] [--batch-size 32] [--runtime onnx-int8] [--docs docs/benchmarks.md]

The issue's target: the job reaches at least 90 % of the in-process records/s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

TASK = "text-classification"
THREADS = min(2, os.cpu_count() or 1)  # what a cpu-medium replica gets on this machine
TARGET = 0.90


def build_records(model_dir: Path, path: Path, count: int, tokens: int = 128) -> int:
    """``count`` JSON Lines records of exactly ``tokens`` tokens; returns how many distinct texts."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    base = common.text_of_tokens(model_dir, tokens).split()
    texts = []
    for shift in range(len(base)):
        words = base[shift:] + base[:shift]
        text = " ".join(words)
        if len(tokenizer(text)["input_ids"]) == tokens:
            texts.append(text)
        if len(texts) == 16:
            break
    with open(path, "w") as sink:
        for index in range(count):
            sink.write(json.dumps({"inputs": texts[index % len(texts)]}) + "\n")
    return len(texts)


def in_process(model_dir: str, records_path: str, runtime: str, batch_size: int, cache_dir: str) -> dict[str, Any]:
    """The floor: the model's own records/s over the same records (run in a fresh process)."""
    import torch

    from hubserve.models import batching
    from hubserve.models.loading import load_model

    torch.set_num_threads(THREADS)
    model = load_model(Path(model_dir), TASK, runtime=runtime, threads=THREADS, cache_dir=Path(cache_dir))
    chosen = model.runtime_info.get("chosen")
    bodies = [json.loads(line) for line in Path(records_path).read_text().splitlines()]
    batching.predict_many(model, bodies[:batch_size], batch_size)  # warm-up: lazy initialisation
    started = time.perf_counter()
    results = batching.predict_many(model, bodies, batch_size)
    seconds = time.perf_counter() - started
    failures = sum(isinstance(result, Exception) for result in results)
    return {"seconds": seconds, "records": len(bodies), "failures": failures, "runtime": chosen}


def batch_job(model_dir: Path, records_path: Path, runtime: str, batch_size: int, home: Path, work: Path) -> dict[str, Any]:
    """The same records through a real server's batch job; the job's own figures plus end to end."""
    from hubserve.sdk.client import Client

    env = {"HUBSERVE_STORAGE_ROOTS": json.dumps([str(work)])}
    process, url = common.start_server(home, env=env, log=work / "server.log")
    try:
        with Client(url) as client:
            submitted = time.monotonic()
            job = client.create_batch_job({
                "model": str(model_dir), "task": TASK, "runtime": runtime, "instance": "cpu-medium",
                "input": str(records_path), "output": str(work / "out"), "batch_size": batch_size,
            })  # fmt: skip
            job = client.wait_batch_job(job["id"], interval=1.0)
            wall = time.monotonic() - submitted
    finally:
        common.stop_process(process)
    if job["status"] != "completed":
        raise RuntimeError(f"the batch job ended {job['status']}: {job.get('reason')}")
    output = work / "out" / (records_path.name + ".out")
    lines = output.read_text().count("\n")
    return {"job": job, "wall_s": wall, "output_lines": lines}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--runtime", default="onnx-int8", choices=("torch", "onnx", "onnx-int8"))
    parser.add_argument("--docs", type=Path, default=None, help="write the table into this markdown file's batch-transform section")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hubserve-batch-bench-"))
    try:
        model_dir = common.build_distilbert_sst2(work / "distilbert-sst2")
        records_path = work / "records.jsonl"
        distinct = build_records(model_dir, records_path, args.records)
        home = work / "home"
        cache = home / "runtimes"  # the server's ONNX cache: the in-process run exports once for both
        busy = common.machine_busy(1.0)
        print(f"{args.records} records of 128 tokens ({distinct} distinct texts), batch size {args.batch_size}, "
              f"runtime {args.runtime}, {THREADS} threads; machine {busy:.0f}% busy before measuring", flush=True)  # fmt: skip
        floor = common.in_child(in_process, str(model_dir), str(records_path), args.runtime, args.batch_size, str(cache))
        print(f"in-process: {floor['records'] / floor['seconds']:.2f} records/s ({floor['seconds']:.0f} s)", flush=True)
        served = batch_job(model_dir, records_path, args.runtime, args.batch_size, home, work)
        report(args, floor, served)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(args: argparse.Namespace, floor: dict[str, Any], served: dict[str, Any]) -> None:
    job = served["job"]
    floor_rate = floor["records"] / floor["seconds"]
    job_rate = float(job["records_per_s"])
    e2e_rate = job["records"]["done"] / served["wall_s"]
    header = ["system", "records", "failed", "records/s", "ratio vs in-process"]
    rows = [
        ["in-process predict_many (floor)", str(floor["records"]), str(floor["failures"]), f"{floor_rate:.2f}", "1.000"],
        ["batch job (its processing run)", str(job["records"]["done"]), str(job["records"]["failed"]), f"{job_rate:.2f}",
         f"{job_rate / floor_rate:.3f}"],
        ["batch job end to end (submit to completed)", str(job["records"]["done"]), str(job["records"]["failed"]),
         f"{e2e_rate:.2f}", f"{e2e_rate / floor_rate:.3f}"],
    ]  # fmt: skip
    print()
    common.print_table(header, rows, left=1)
    ratio = job_rate / floor_rate
    verdict = "PASS" if ratio >= TARGET else "FAIL"
    print(f"\n{verdict}: the batch job reached {ratio:.1%} of in-process records/s (target >= {TARGET:.0%}); "
          f"output lines {served['output_lines']} for {args.records} records", flush=True)  # fmt: skip
    if args.docs:
        date = datetime.date.today().isoformat()
        command = (f"flock /tmp/hubserve-bench.lock .venv/bin/python benchmarks/batch_transform.py --records {args.records} "
                   f"--batch-size {args.batch_size} --runtime {args.runtime}")  # fmt: skip
        content = (
            f"```bash\n{command}\n```\n\n{date}, 2-core x86-64 development machine, runtime {floor['runtime']}, "
            f"{THREADS} threads, batch size {args.batch_size}, {args.records} records of 128 tokens:\n\n"
            + common.markdown_table(header, rows, align=lambda i: "---" if i < 1 else "---:")
            + f"\n\n**{verdict}**: {ratio:.1%} of the in-process records/s (target >= {TARGET:.0%})."
        )
        common.replace_section(args.docs, "batch-transform", content, "## Batch transform")


if __name__ == "__main__":
    main()
