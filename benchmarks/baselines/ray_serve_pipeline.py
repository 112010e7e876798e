"""Ray Serve serving the same transformers pipeline, on a Ray cluster: the peer of hubserve's Ray backend.

Ray Serve's own recipe: one deployment whose replica builds the pipeline once and whose
``@serve.batch`` method gets up to 32 requests at a time, collected for at most 10 ms (the same
batching as the LitServe baseline). The replica reserves ``--cpus`` CPUs and runs torch on as
many threads, like a hubserve replica of the same size.

Two shapes:
  dedicated       exactly one replica, always up (latency and throughput rows)
  --scale-to-zero autoscaling between 0 and 1 replica that goes to zero one second after its
                  last request (the cold-start row: the benchmark waits for zero, then asks)

A small control server on ``--control-port`` answers ``GET /replicas`` with the number of running
replicas (from ``serve.status()``), so the benchmark can wait for zero without being a Ray driver.

    python benchmarks/baselines/ray_serve_pipeline.py --address 127.0.0.1:6379 --model-dir DIR --port 8000 \
        --control-port 8001 [--scale-to-zero] [--cpus 2]
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import threading
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import ray
from ray import serve
from starlette.requests import Request

MAX_BATCH_SIZE = 32
BATCH_WAIT_S = 0.01
APP = "pipeline"


def deployment(model_dir: str, task: str, cpus: int, scale_to_zero: bool) -> Any:
    """The application: one deployment around a batched pipeline, sized and scaled as asked."""
    options: dict[str, Any] = {"ray_actor_options": {"num_cpus": cpus}, "max_ongoing_requests": 64}
    if scale_to_zero:
        options["autoscaling_config"] = {
            "min_replicas": 0, "initial_replicas": 0, "max_replicas": 1, "target_ongoing_requests": 32,
            "upscale_delay_s": 0, "downscale_delay_s": 1, "downscale_to_zero_delay_s": 1,
            "metrics_interval_s": 0.5, "look_back_period_s": 1,
        }  # fmt: skip
    else:
        options["num_replicas"] = 1

    @serve.deployment(**options)
    class Pipeline:
        def __init__(self) -> None:
            import torch
            from transformers import pipeline

            torch.set_num_threads(cpus)
            self.pipe = pipeline(task, model=model_dir, device="cpu")

        @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_S)
        async def predict(self, inputs: list[Any]) -> list[Any]:
            return list(self.pipe(inputs, batch_size=len(inputs)))

        async def __call__(self, request: Request) -> Any:
            return await self.predict((await request.json())["inputs"])

    return Pipeline.bind()


def running_replicas() -> int:
    status = serve.status().applications.get(APP)
    if status is None:
        return 0
    return sum(d.replica_states.get("RUNNING", 0) for d in status.deployments.values())


class _Control(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"replicas": running_replicas()}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", required=True)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--task", default="text-classification")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--control-port", type=int, default=8001)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--scale-to-zero", action="store_true")
    args = parser.parse_args()
    ray.init(address=args.address, namespace="serve-baseline", log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(deployment(args.model_dir, args.task, args.cpus, args.scale_to_zero), name=APP, route_prefix="/predict")
    control = http.server.ThreadingHTTPServer(("127.0.0.1", args.control_port), _Control)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    print(f"ray serve ready on 127.0.0.1:{args.port}/predict", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()


if __name__ == "__main__":
    main()
