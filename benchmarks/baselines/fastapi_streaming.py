"""The streaming server a user would hand-build: FastAPI + uvicorn + ``model.generate`` in a thread per request.

What the transformers streaming docs and most tutorials show: a ``TextIteratorStreamer`` handed to
``model.generate`` running in a ``threading.Thread``, and a ``StreamingResponse`` that relays the
streamer's text as server-sent events. Every request is its own ``generate`` call (batch of one);
concurrent requests share the model and torch's intra-op threads, without batching. Greedy, with
``min_new_tokens`` equal to ``max_new_tokens`` so every completion runs to its token budget.

    POST /generate_stream {"inputs": "...", "parameters": {"max_new_tokens": 128}}
      -> data: {"text": "..."} per chunk the streamer releases (whole words: it holds back the last
         word until the next one starts), then data: {"generated_tokens": N}, then data: [DONE]
    GET /health

    python benchmarks/baselines/fastapi_streaming.py --model-dir DIR --port 8000
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel


class Body(BaseModel):
    inputs: str
    parameters: dict[str, Any] = {}


def build_app(model_dir: str) -> FastAPI:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/generate_stream")
    def generate_stream(body: Body) -> StreamingResponse:
        max_new_tokens = int(body.parameters.get("max_new_tokens", 128))
        inputs = tokenizer(body.inputs, return_tensors="pt")
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        done: dict[str, int] = {}

        def run() -> None:
            with torch.inference_mode():
                out = model.generate(**inputs, streamer=streamer, max_new_tokens=max_new_tokens,
                                     min_new_tokens=max_new_tokens, do_sample=False)  # fmt: skip
            done["generated_tokens"] = int(out.shape[1] - inputs["input_ids"].shape[1])

        thread = threading.Thread(target=run, daemon=True)
        thread.start()

        def events() -> Iterator[str]:
            for text in streamer:
                if text:
                    yield f"data: {json.dumps({'text': text})}\n\n"
            thread.join()
            yield f"data: {json.dumps(done)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(build_app(args.model_dir), host="127.0.0.1", port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
