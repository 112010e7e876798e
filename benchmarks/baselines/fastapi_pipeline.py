"""The server a user would hand-build: FastAPI + uvicorn + a transformers pipeline, one process.

This is the seed's ECS container: load a pipeline at import, expose ``POST /predict``, run it
with one uvicorn worker. The route is a plain ``def`` with a pydantic body, as the FastAPI and
Hugging Face tutorials write it, so FastAPI runs each request in its thread pool and concurrent
requests share the pipeline (and torch's intra-op threads) without batching. ``--noop`` answers
``{"ok": true}`` without loading a model: the framework's own cost.

    python benchmarks/baselines/fastapi_pipeline.py --model-dir DIR --task text-classification --port 8000
    python benchmarks/baselines/fastapi_pipeline.py --noop --port 8000
"""

from __future__ import annotations

import argparse
import os
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class Body(BaseModel):
    inputs: Any
    parameters: dict[str, Any] = {}


def build_app(model_dir: str | None, task: str) -> FastAPI:
    """``model_dir`` None: the no-op server."""
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    if model_dir is None:

        @app.post("/predict")
        def noop(body: Body) -> Any:
            return {"ok": True}

        return app

    from transformers import pipeline

    pipe = pipeline(task, model=model_dir, device="cpu")

    @app.post("/predict")
    def predict(body: Body) -> Any:
        return pipe(body.inputs, **body.parameters)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir")
    parser.add_argument("--task", default="text-classification")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--noop", action="store_true")
    args = parser.parse_args()
    if not args.noop and not args.model_dir:
        parser.error("--model-dir is required unless --noop")
    app = build_app(None if args.noop else args.model_dir, args.task)
    uvicorn.run(app, host="127.0.0.1", port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
