"""The replica's main loop: load the model, then serve frames from the gateway on a Unix socket.

Inference runs in one thread (torch uses its own intra-op threads), so the event loop stays free
to read new requests while a prediction runs.

The same ``main`` runs in a fresh ``python -m hubserve.worker`` process and in a replica forked
from the zygote (worker/zygote.py), where the imports below are already done. Either way the
replica prints its start-up phases as ``hubserve-replica-timing {json}`` lines in its log
(``main_at``/``ready_at`` are wall-clock seconds, the ``*_s`` fields durations), which is how
benchmarks/cold_start.py splits a cold start into fork, imports, weight load and first inference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hubserve.worker.handling import handle
from hubserve.worker.protocol import Request, Response, decode_request, encode_frame, read_payload

READY_LINE = "hubserve-replica-ready"
TIMING_PREFIX = "hubserve-replica-timing "


def _print_timing(**fields: float) -> None:
    print(TIMING_PREFIX + json.dumps(fields), flush=True)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hubserve-replica")
    parser.add_argument("--socket", required=True, type=Path)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--task", required=True)
    parser.add_argument("--custom-code", action="store_true")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--error-file", required=True, type=Path)
    parser.add_argument("--info-file", type=Path, help="where to write what the replica chose (runtime, timings)")
    parser.add_argument("--runtime", default="torch", choices=("torch", "onnx", "onnx-int8", "auto"))
    parser.add_argument("--cache-dir", type=Path, help="cache of exported and quantized runtimes")
    parser.add_argument("--max-batch-size", type=int, help="sequences per batch (default per runtime)")
    parser.add_argument("--max-batch-tokens", type=int, help="tokens per batch (default per runtime)")
    parser.add_argument("--cpus", default="", help="comma-separated CPU numbers to run on (default: all)")
    return parser.parse_args(argv)


def _exit_with_parent() -> None:
    """A replica must never outlive the server that started it, however the server died."""
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


class ReplicaServer:
    """Serves one loaded model to any number of gateway connections."""

    def __init__(self, model: object) -> None:
        self._model = model
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._first_done = False

    async def serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    payload = await read_payload(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request = decode_request(payload)
                if self._first_done:
                    future = loop.run_in_executor(self._executor, handle, self._model, request)
                else:
                    self._first_done = True
                    future = loop.run_in_executor(self._executor, _handle_first, self._model, request)
                future.add_done_callback(lambda done, w=writer: _reply(w, done.result()))
        finally:
            writer.close()


def _handle_first(model: Any, request: Request) -> Response:
    """The first request pays for lazy initialisation (kernels, tokenizer caches); time it."""
    started = time.perf_counter()
    response = handle(model, request)
    _print_timing(first_request_s=round(time.perf_counter() - started, 4))
    return response


def _reply(writer: asyncio.StreamWriter, response: Response) -> None:
    if not writer.is_closing():
        writer.write(encode_frame(response))


async def _serve(socket_path: Path, server: ReplicaServer) -> None:
    socket_path.unlink(missing_ok=True)
    unix_server = await asyncio.start_unix_server(server.serve_connection, path=str(socket_path))
    _print_timing(ready_at=time.time())
    print(READY_LINE, flush=True)
    async with unix_server:
        await unix_server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    main_at = time.time()
    args = _parse_args(argv)
    if args.cpus:
        os.sched_setaffinity(0, [int(cpu) for cpu in args.cpus.split(",")])
    threading.Thread(target=_exit_with_parent, daemon=True, name="parent-watch").start()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    started = time.perf_counter()
    try:
        import torch

        torch.set_num_threads(max(1, args.threads))
        import transformers

        transformers.utils.logging.disable_progress_bar()  # bars would flood the replica's log
        from hubserve.models.loading import load_model

        imported = time.perf_counter()
        model = load_model(
            args.model_dir, args.task, custom_code=args.custom_code, dtype=args.dtype, device=args.device,
            runtime=args.runtime, cache_dir=args.cache_dir, threads=args.threads,
        )  # fmt: skip
        if args.info_file is not None:
            args.info_file.write_text(json.dumps({"runtime": model.runtime_info}))
    except BaseException as exc:  # any failure to load is the endpoint's failure reason
        traceback.print_exc()
        args.error_file.write_text(json.dumps({"type": type(exc).__name__, "message": str(exc)}))
        sys.exit(3)
    loaded = time.perf_counter()
    print(f"model loaded in {loaded - started:.2f}s (task {args.task})", flush=True)
    _print_timing(main_at=main_at, imports_s=round(imported - started, 4), load_s=round(loaded - imported, 4))
    asyncio.run(_serve(args.socket, ReplicaServer(model)))


if __name__ == "__main__":
    main()
