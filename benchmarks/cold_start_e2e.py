"""The cold start a user sees: a request to a scaled-to-zero endpoint until its response.

Two real `hubserve serve` processes, measured one after the other in this run:
  zygote    replicas fork from a process that already imported torch and transformers (default)
  process   replicas are fresh `python -m hubserve.worker` processes (HUBSERVE_ZYGOTE=0), the baseline
Each round: scale the endpoint to zero (POST /v1/endpoints/NAME/scale-to-zero), then time one
128-token request from the client until its response. Model: a full-size DistilBERT SST-2-shaped
classifier (random weights, ~255 MB safetensors, the real BERT-uncased tokenizer).

    .venv/bin/python benchmarks/cold_start_e2e.py [--rounds 7]
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
from common import build_distilbert_sst2, start_server, text_of_tokens


def measure(home: Path, model_dir: Path, body: dict, rounds: int, zygote: bool) -> list[dict[str, float]]:
    os.environ["HUBSERVE_ZYGOTE"] = "1" if zygote else "0"
    process, url = start_server(home)
    samples = []
    try:
        with httpx.Client(base_url=url, timeout=300) as http:
            spec = {"name": "sst2", "model": {"source": str(model_dir), "task": "text-classification"},
                    "compute": {"type": "serverless", "memory_mb": 3072, "max_concurrency": 5}}  # fmt: skip
            http.post("/v1/endpoints", json=spec).raise_for_status()
            while http.get("/v1/endpoints/sst2").json()["state"] != "running":
                time.sleep(0.1)
            http.post("/endpoints/sst2", json=body).raise_for_status()  # page cache warm, as after any first start
            for _ in range(rounds):
                http.post("/v1/endpoints/sst2/scale-to-zero").raise_for_status()
                started = time.perf_counter()
                response = http.post("/endpoints/sst2", json=body)
                total_ms = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                assert response.headers["x-cold-start"] == "true"
                setup = http.get("/v1/endpoints/sst2").json()["model_setup_ms"]["last"]
                samples.append({"total": total_ms, "setup": setup, "model": float(response.headers["x-model-latency-ms"])})
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(60)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_distilbert_sst2(Path(tmp) / "distilbert-sst2")
        size_mb = sum(f.stat().st_size for f in model_dir.glob("*.safetensors")) / 1e6
        body = {"inputs": text_of_tokens(model_dir, 128)}
        results = {
            "process": measure(Path(tmp) / "home-process", model_dir, body, args.rounds, zygote=False),
            "zygote": measure(Path(tmp) / "home-zygote", model_dir, body, args.rounds, zygote=True),
        }
    print(f"\nDistilBERT SST-2-shaped ({size_mb:.0f} MB safetensors), 128-token request, {args.rounds} cold starts each\n")
    header = f"{'replica start':<14} {'cold request p50 ms':>20} {'min':>8} {'max':>8} {'ModelSetupTime p50':>19} {'first inference p50':>20}"
    print(header)
    print("-" * len(header))
    for name, samples in results.items():
        totals = [s["total"] for s in samples]
        print(f"{name:<14} {statistics.median(totals):20.0f} {min(totals):8.0f} {max(totals):8.0f} "
              f"{statistics.median(s['setup'] for s in samples):19.0f} {statistics.median(s['model'] for s in samples):20.0f}")  # fmt: skip
    ratio = statistics.median(s["total"] for s in results["process"]) / statistics.median(s["total"] for s in results["zygote"])
    print(f"\nzygote is {ratio:.1f}x faster than a fresh process (median cold request)")


if __name__ == "__main__":
    main()
