"""The replica's main loop: load the model, then serve frames from the gateway on a Unix socket.

Inference runs in one thread (torch uses its own intra-op threads), so the event loop stays free
to read new requests while a prediction runs. Requests go through the batcher (worker/batcher.py):
those that arrive while a batch runs are run together in the next one, within
``--max-batch-size`` sequences and ``--max-batch-tokens`` tokens (defaults per runtime and device:
``models.batching.default_limits``). Every batch of more than one request is reported as a
``hubserve-replica-batch {json}`` line (at most one line a second; ``batches`` and
``batched_requests`` count every such batch since the start).

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
from functools import partial
from pathlib import Path
from typing import Any

from hubserve.logs.stamp import stamp_output
from hubserve.models.batching import Limits, default_limits
from hubserve.worker.batcher import BatchDone, Batcher
from hubserve.worker.handling import Planned, body_from_file, error_response, plan, run_planned
from hubserve.worker.protocol import Response, decode_request, encode_frame, read_payload

READY_LINE = "hubserve-replica-ready"
TIMING_PREFIX = "hubserve-replica-timing "
BATCH_PREFIX = "hubserve-replica-batch "
BATCH_LOG_INTERVAL_S = 1.0


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


def resolve_limits(model: Any, device: str, max_batch_size: int | None, max_batch_tokens: int | None) -> Limits:
    """The flags where given, else the defaults for the runtime the model loaded on."""
    runtime_info = getattr(model, "runtime_info", None) or {}
    default = default_limits(str(runtime_info.get("chosen", "torch")), device)
    return Limits(max_batch_size or default.max_batch_size, max_batch_tokens or default.max_batch_tokens)


class ReplicaServer:
    """Serves one loaded model to any number of gateway connections, batching what arrives together."""

    def __init__(self, model: Any, limits: Limits | None = None) -> None:
        self._model = model
        self.limits = limits or resolve_limits(model, "cpu", None, None)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self.batcher = Batcher(
            self._run,
            self._executor,
            max_batch_size=self.limits.max_batch_size,
            max_batch_tokens=self.limits.max_batch_tokens,
            on_batch=self._report,
        )
        self._first_done = False
        self._batches = 0
        self._batched_requests = 0
        self._last_report = 0.0

    async def serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        waiting: set[asyncio.Future[Any]] = set()
        try:
            while True:
                try:
                    payload = await read_payload(reader)
                except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                    return
                request = decode_request(payload)
                if request.body_path:  # an async payload: read here, in a thread, never by the gateway
                    loaded = await asyncio.to_thread(body_from_file, request)
                    if isinstance(loaded, Response):
                        _reply(writer, loaded)
                        continue
                    request = loaded
                planned = plan(self._model, request)
                if isinstance(planned, Response):  # a bad body: answered now, never queued
                    _reply(writer, planned)
                    continue
                future = self.batcher.submit(planned)
                waiting.add(future)
                future.add_done_callback(partial(_deliver, writer, waiting, request.id))
        finally:
            # The connection is gone: its queued requests are dropped, running ones' answers discarded;
            # other connections' requests are untouched.
            for future in list(waiting):
                future.cancel()
            writer.close()

    def _run(self, batch: list[Planned]) -> list[Response]:
        """One batch, in the inference thread."""
        if self._first_done:
            return run_planned(self._model, batch, self.limits.max_batch_size)
        # The first request pays for lazy initialisation (kernels, tokenizer caches); time it.
        self._first_done = True
        started = time.perf_counter()
        responses = run_planned(self._model, batch, self.limits.max_batch_size)
        _print_timing(first_request_s=round(time.perf_counter() - started, 4))
        return responses

    def _report(self, done: BatchDone) -> None:
        if done.requests < 2:
            return
        self._batches += 1
        self._batched_requests += done.requests
        now = time.monotonic()
        if now - self._last_report < BATCH_LOG_INTERVAL_S:
            return
        self._last_report = now
        fields = {
            "requests": done.requests, "sequences": done.sequences, "tokens": done.tokens,
            "ms": round(done.seconds * 1000, 2), "batches": self._batches, "batched_requests": self._batched_requests,
        }  # fmt: skip
        print(BATCH_PREFIX + json.dumps(fields), flush=True)


def _deliver(
    writer: asyncio.StreamWriter, waiting: set[asyncio.Future[Any]], request_id: int, done: asyncio.Future[Any]
) -> None:
    waiting.discard(done)
    if done.cancelled():
        return
    exc = done.exception()
    _reply(writer, error_response(request_id, exc) if exc is not None else done.result())


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
    stamp_output()  # every line of the replica's log gets its time and stream (the logs API merges them)
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
        limits = resolve_limits(model, args.device, args.max_batch_size, args.max_batch_tokens)
        if args.info_file is not None:
            batching_info = {"max_batch_size": limits.max_batch_size, "max_batch_tokens": limits.max_batch_tokens}
            args.info_file.write_text(json.dumps({"runtime": model.runtime_info, "batching": batching_info}))
    except BaseException as exc:  # any failure to load is the endpoint's failure reason
        traceback.print_exc()
        args.error_file.write_text(json.dumps({"type": type(exc).__name__, "message": str(exc)}))
        sys.exit(3)
    loaded = time.perf_counter()
    print(f"model loaded in {loaded - started:.2f}s (task {args.task})", flush=True)
    _print_timing(main_at=main_at, imports_s=round(imported - started, 4), load_s=round(loaded - imported, 4))
    print(f"batching: at most {limits.max_batch_size} sequences and {limits.max_batch_tokens} tokens a batch", flush=True)
    asyncio.run(_serve(args.socket, ReplicaServer(model, limits)))


if __name__ == "__main__":
    main()
