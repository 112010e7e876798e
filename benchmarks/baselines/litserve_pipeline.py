"""LitServe with dynamic batching around the same transformers pipeline.

LitServe's own recipe: a ``LitAPI`` whose ``setup`` builds the pipeline once per worker and
whose ``predict`` gets up to ``max_batch_size`` decoded requests at a time, collected for at
most ``batch_timeout`` seconds. One inference worker and one API server process, on the CPU,
so it holds the same 2 cores as everything else it is compared with. ``--noop`` answers
``{"ok": true}`` per request without a model, with the same batching.

The batch timeout: at concurrency 1 each request waits for it, at concurrency 32 a batch of a
~100 ms model fills long before it ends; 10 ms costs little latency and loses no batching.

    python benchmarks/baselines/litserve_pipeline.py --model-dir DIR --task text-classification --port 8000
    python benchmarks/baselines/litserve_pipeline.py --noop --port 8000
"""

from __future__ import annotations

import argparse
import os
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import litserve as ls

MAX_BATCH_SIZE = 32
BATCH_TIMEOUT_S = 0.01


class PipelineAPI(ls.LitAPI):
    """``{"inputs": ..., "parameters": {...}}`` in, the pipeline's answer out, batched."""

    def __init__(self, model_dir: str | None, task: str) -> None:
        super().__init__(max_batch_size=MAX_BATCH_SIZE, batch_timeout=BATCH_TIMEOUT_S)
        self.model_dir, self.task = model_dir, task

    def setup(self, device: str) -> None:
        self.pipe = None
        if self.model_dir is not None:
            from transformers import pipeline

            self.pipe = pipeline(self.task, model=self.model_dir, device="cpu")

    # No annotations on these two: LitServe builds its route from them, and a (postponed,
    # string) annotation would turn the body into a query parameter.
    def decode_request(self, request):  # type: ignore[no-untyped-def]
        return request["inputs"]

    def batch(self, inputs: list[Any]) -> list[Any]:
        return inputs

    def predict(self, batch: list[Any]) -> list[Any]:
        if self.pipe is None:
            return [{"ok": True}] * len(batch)
        # batch_size: without it a pipeline runs a list one item at a time, and batching would be in name only.
        return self.pipe(batch, batch_size=len(batch))

    def unbatch(self, output: list[Any]) -> list[Any]:
        return list(output)

    def encode_response(self, output):  # type: ignore[no-untyped-def]
        return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir")
    parser.add_argument("--task", default="text-classification")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--noop", action="store_true")
    args = parser.parse_args()
    if not args.noop and not args.model_dir:
        parser.error("--model-dir is required unless --noop")
    api = PipelineAPI(None if args.noop else args.model_dir, args.task)
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=1, timeout=600)
    server.run(host="127.0.0.1", port=args.port, num_api_servers=1, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
