"""The replica's main loop: resolve and load the model, then serve frames from the gateway on a Unix socket.

The replica is started with one ``--launch`` argument, the JSON of a ``ReplicaLaunch``
(worker/launch.py), plus the backend's local plumbing (``--socket``, or ``--listen HOST:PORT``
with ``--address-file`` for TCP, ``--error-file``, ``--info-file``, ``--phase-file``, ``--cpus``). It resolves the model source itself
(models.sources: a local folder or a Hub repo, offline cache honoured), infers the task when the
launch names none, and loads the model. Any failure up to there is written to the error file as
``{"phase": "source" | "task" | "load" | "weights", "type", "message"}`` and the replica exits
with code 3: that is how the backend tells the user why the endpoint failed (``weights``: the
checkpoint lacks weights of the task's model, models.weights.MissingWeights).

While it loads, each step it begins (``loading the model``, ``exporting to ONNX (step 1 of 4)``:
models.progress) is appended to the phase file as one JSON line ``{"phase", "at"}``, written
with one ``write`` so a reader never sees half a line; the backend reads them while it waits.

Inference runs in one thread (torch uses its own intra-op threads), so the event loop stays free
to read new requests while a prediction runs. Requests go through the batcher (worker/batcher.py):
those that arrive while a batch runs are run together in the next one, within
``max_batch_size`` sequences and ``max_batch_tokens`` tokens (defaults per runtime and device:
``models.batching.default_limits``). Every batch of more than one request is reported as a
``hubserve-replica-batch {json}`` line (at most one line a second; ``batches`` and
``batched_requests`` count every such batch since the start).

A text-generation replica also runs a continuous-batching engine in its own thread
(models/textgen/engine.py, wired by worker/generating.py): its requests bypass the batcher, join
the running batch at the next decoding step and stream a ``Part`` per token when asked. Its
levels go to every open connection as ``Stats`` frames, at most every ``STATS_INTERVAL_S``
while they change.

A ``Cancel`` frame drops its request: unqueued if it still waits (its batch slot is freed), its
answer discarded if it runs, and a stream stopped between two parts (handling.Sink). A stream
request gets ``Part`` frames where the model streams (handling.py), then its ``End``.

The same ``main`` runs in a fresh ``python -m hubserve.worker`` process and in a replica forked
from the zygote (worker/zygote.py), where the imports below are already done. Either way the
replica prints its start-up phases as ``hubserve-replica-timing {json}`` lines in its log
(``main_at``/``ready_at`` are wall-clock seconds, the ``*_s`` fields durations; ``load_s``
includes resolving the source, also reported alone as ``resolve_s``), which is how
benchmarks/cold_start.py splits a cold start into fork, imports, weight load and first inference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import msgspec

from hubserve.logs.stamp import stamp_output
from hubserve.models.batching import Limits, default_limits
from hubserve.models.textgen.params import GenerationLimits
from hubserve.tasks import GENERATIVE_TASKS
from hubserve.types import EngineStats
from hubserve.worker.batcher import BatchDone, Batcher, Pending
from hubserve.worker.generating import (
    GenerationCall,
    parse_generation,
    plan_seq2seq,
    seq2seq_streams,
    start_engine,
    wants_generation,
)
from hubserve.worker.handling import Planned, Sink, body_from_url, error_response, plan, run_planned, streams
from hubserve.worker.launch import ReplicaLaunch, apply_memory_backstop, decode_launch
from hubserve.worker.model_host import ModelHost
from hubserve.worker.protocol import Cancel, End, Request, Stats, decode_frame, encode_frame, read_payload
from hubserve.worker.without_torch import forbid_torch

READY_LINE = "hubserve-replica-ready"
TIMING_PREFIX = "hubserve-replica-timing "
BATCH_PREFIX = "hubserve-replica-batch "
BATCH_LOG_INTERVAL_S = 1.0
STATS_INTERVAL_S = 0.1
MODELS_INTERVAL_S = 0.05  # a load or unload: routing should know at once
MODELS_COUNTERS_INTERVAL_S = 1.0  # only counters and last use changed

# What a connection has in flight, by request id: queued or running in the batcher, in the generation
# engine, or (a multi-model replica) waiting for its model to load.
InFlight = dict[int, "Pending | GenerationCall | asyncio.Task[None]"]


def _print_timing(**fields: float) -> None:
    print(TIMING_PREFIX + json.dumps(fields), flush=True)


def _launch_arg(text: str) -> ReplicaLaunch:
    try:
        return decode_launch(text)
    except msgspec.DecodeError as exc:
        raise argparse.ArgumentTypeError(f"not a ReplicaLaunch: {exc}") from None


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r}")
    return host, int(port)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The launch (decoded) and the backend's local plumbing; everything else is in the launch."""
    parser = argparse.ArgumentParser(prog="hubserve-replica")
    parser.add_argument("--launch", required=True, type=_launch_arg, help="the ReplicaLaunch, as JSON")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", type=Path, help="the Unix socket to listen on (the local backend)")
    where.add_argument("--listen", type=_host_port, help="HOST:PORT to listen on over TCP (port 0: any free one)")
    parser.add_argument(
        "--address-file", type=Path, help="with --listen: where the HOST:PORT listened on is written once it serves"
    )
    parser.add_argument("--error-file", required=True, type=Path)
    parser.add_argument(
        "--info-file", type=Path, help="where to write what the replica chose (task, runtime, batching)"
    )
    parser.add_argument("--phase-file", type=Path, help="where to append each step of the start as it begins")
    parser.add_argument("--cpus", default="", help="comma-separated CPU numbers to run on (default: all)")
    return parser.parse_args(argv)


REPLICA_NICENESS = 5
SERVER_PID_ENV = "HUBSERVE_REPLICA_SERVER_PID"  # set by the zygote in the replicas it forks: the server, its own parent


def _exit_with_server() -> None:
    """A replica must never outlive the server that started it, however the server died.

    It watches the server, not its parent: a replica forked by the zygote keeps serving when the zygote
    dies (the server starts another for the next replica). The server's start time tells it from a
    process that got its pid later."""
    server = int(os.environ.get(SERVER_PID_ENV) or os.getppid())
    started = _start_time(server)
    if started is None:  # gone already
        os._exit(0)
    while True:
        time.sleep(0.5)
        if _start_time(server) != started:
            os._exit(0)


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22); None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19] if len(fields) > 19 and fields[0] not in ("Z", "X") else None


def resolve_limits(model: Any, device: str, max_batch_size: int | None, max_batch_tokens: int | None) -> Limits:
    """The launch's limits where given, else the defaults for the runtime the model loaded on."""
    runtime_info = getattr(model, "runtime_info", None) or {}
    default = default_limits(str(runtime_info.get("chosen", "torch")), device)
    return Limits(max_batch_size or default.max_batch_size, max_batch_tokens or default.max_batch_tokens)


class ReplicaServer:
    """Serves one loaded model to any number of gateway connections, batching what arrives together.

    ``storage_options``: fsspec options per protocol for payload URLs (``body_url``) it opens;
    ``generation``: the endpoint's max_new_tokens default and cap. A multi-model replica has no model
    of its own (``model`` None) but a ``host`` that loads the one each request names (worker/model_host.py).
    """

    def __init__(
        self, model: Any, limits: Limits | None = None, storage_options: dict[str, dict[str, str]] | None = None,
        generation: GenerationLimits | None = None, host: ModelHost | None = None,
    ) -> None:  # fmt: skip
        self._model = model
        self.host = host
        self._models_handle: asyncio.TimerHandle | None = None
        if host is not None:
            host.on_change = self._models_changed
        self.limits = limits or resolve_limits(model, "cpu", None, None)
        self._streams = streams(model)
        self._seq2seq_streams = model is not None and seq2seq_streams(model)
        self._storage_options = storage_options or {}
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
        self.generation_limits = generation or GenerationLimits()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._stats_handle: asyncio.Handle | None = None
        self._stats_sent: EngineStats | None = None
        self._stats_at = 0.0
        self.engine = None if model is None else start_engine(
            model, max_batch_size=self.limits.max_batch_size, max_batch_tokens=self.limits.max_batch_tokens,
            on_change=self._stats_changed,
        )  # fmt: skip

    async def serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        inflight: InFlight = {}  # this connection's requests, queued or running, by id
        self._loop = asyncio.get_running_loop()
        self._writers.add(writer)
        if self.host is not None:  # the gateway learns at once which models this replica holds
            _write(writer, encode_frame(self.host.report()))
        try:
            while True:
                try:
                    frame = decode_frame(await read_payload(reader))
                except (asyncio.IncompleteReadError, ConnectionError, ValueError):  # msgspec.DecodeError too
                    return
                if isinstance(frame, Request):
                    request: Request | None = frame
                    if frame.body_url:  # an async payload: read here, in a thread, never by the gateway
                        request = await self._load_body(frame, writer)
                    if request is not None:
                        self._accept(request, writer, inflight)
                elif isinstance(frame, Cancel):
                    pending = inflight.pop(frame.id, None)
                    if pending is not None:
                        _drop(pending)
        finally:
            # The connection is gone: its queued requests are dropped, running ones' answers discarded
            # and streams stopped; other connections' requests are untouched.
            for pending in inflight.values():
                _drop(pending)
            inflight.clear()
            self._writers.discard(writer)
            writer.close()

    async def _load_body(self, request: Request, writer: asyncio.StreamWriter) -> Request | None:
        """The request with its payload read from ``body_url``; None once a failure was answered."""
        loaded = await asyncio.to_thread(body_from_url, request, self._storage_options)
        if isinstance(loaded, End):
            _write(writer, encode_frame(loaded))
            return None
        return loaded

    def _accept(self, request: Request, writer: asyncio.StreamWriter, inflight: InFlight) -> None:
        """Plan a request and queue it, or answer a bad one at once (it never queues)."""
        if self.host is not None:
            if not request.target_model:
                message = ("This endpoint serves many models: name one (TargetModel, the X-Amzn-SageMaker-Target-Model "
                           "header, or POST /endpoints/{endpoint}/models/{model}).")  # fmt: skip
                _write(writer, encode_frame(End(request.id, False, error_type="ValidationError", error_message=message)))
                return
            inflight[request.id] = asyncio.get_running_loop().create_task(self._accept_for_model(request, writer, inflight))
            return
        if request.target_model:
            message = (f"This endpoint serves one model; drop the target model '{request.target_model}' "
                       "(multi-model endpoints take one: model.multi_model in the spec).")  # fmt: skip
            _write(writer, encode_frame(End(request.id, False, error_type="ValidationError", error_message=message)))
            return
        if self.engine is not None and self._generate(request, writer, inflight):
            return
        can_stream = self._streams or (self._seq2seq_streams and wants_generation(request.accept))
        sink = Sink(asyncio.get_running_loop(), partial(_write, writer)) if request.stream and can_stream else None
        planned = plan_seq2seq(self._model, self.generation_limits, request) if self._seq2seq_streams else None
        if isinstance(planned, Pending) and sink is not None:
            planned.payload.sink = sink
        if planned is None:
            planned = plan(self._model, request, sink)
        if isinstance(planned, End):
            _write(writer, encode_frame(planned))
            return
        future = self.batcher.submit(planned)
        inflight[request.id] = planned
        future.add_done_callback(partial(_deliver, writer, inflight, planned))

    async def _accept_for_model(self, request: Request, writer: asyncio.StreamWriter, inflight: InFlight) -> None:
        """A multi-model request: wait for its model (loading it if need be), then plan and queue it as any other."""
        assert self.host is not None
        name = request.target_model
        try:
            model = await self.host.acquire(name)
        except asyncio.CancelledError:  # a Cancel frame, or the connection closed, while it waited
            return
        except Exception as exc:
            inflight.pop(request.id, None)
            _write(writer, encode_frame(error_response(request.id, exc)))
            return
        if inflight.get(request.id) is not asyncio.current_task():  # cancelled as the model came
            self.host.release(name)
            return
        sink = Sink(asyncio.get_running_loop(), partial(_write, writer)) if request.stream and streams(model) else None
        planned = plan(model, request, sink)
        if isinstance(planned, End):
            inflight.pop(request.id, None)
            self.host.release(name)
            _write(writer, encode_frame(planned))
            return
        planned.payload.model = model
        self._schedule_models(MODELS_COUNTERS_INTERVAL_S)  # hits and last use reach the listing within a second
        if planned.key is not None:
            planned.key = (name, planned.key)  # only requests for the same model share a batch
        future = self.batcher.submit(planned)
        inflight[request.id] = planned
        future.add_done_callback(partial(_deliver, writer, inflight, planned))
        future.add_done_callback(lambda _: self.host.release(name) if self.host is not None else None)

    def _models_changed(self) -> None:
        """A model started loading, loaded or unloaded: tell every connection within 50 ms."""
        self._schedule_models(MODELS_INTERVAL_S)

    def _schedule_models(self, delay: float) -> None:
        """Send the models' report in ``delay`` s, or sooner if one is already due sooner."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        when = loop.time() + delay
        handle = self._models_handle
        if handle is not None:
            if handle.when() <= when:
                return
            handle.cancel()
        self._models_handle = loop.call_at(when, self._send_models)

    def _send_models(self) -> None:
        self._models_handle = None
        if self.host is None:
            return
        frame = encode_frame(self.host.report())
        for writer in list(self._writers):
            _write(writer, frame)

    def _generate(self, request: Request, writer: asyncio.StreamWriter, inflight: InFlight) -> bool:
        """Hand a request to the generation engine; False when the pipeline answers it (batcher)."""
        assert self.engine is not None
        try:
            parsed = parse_generation(self.engine, self.generation_limits, request)
        except Exception as exc:
            _write(writer, encode_frame(error_response(request.id, exc)))
            return True
        if parsed is None:
            return False

        def done(call: GenerationCall) -> None:
            if inflight.get(request.id) is call:
                del inflight[request.id]

        call = GenerationCall(self.engine, request, asyncio.get_running_loop(), partial(_write, writer), done)
        inflight[request.id] = call
        call.start(*parsed)
        return True

    def _stats_changed(self, stats: EngineStats) -> None:
        """From the engine's thread after each step: schedule a Stats frame on the loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._schedule_stats)

    def _schedule_stats(self) -> None:
        if self._stats_handle is not None or self._loop is None:
            return
        delay = max(0.0, self._stats_at + STATS_INTERVAL_S - time.monotonic())
        self._stats_handle = self._loop.call_later(delay, self._send_stats)

    def _send_stats(self) -> None:
        """The engine's levels to every open connection, unless nothing changed since the last."""
        self._stats_handle = None
        if self.engine is None:
            return
        stats = self.engine.stats()
        if stats == self._stats_sent:
            return
        self._stats_sent, self._stats_at = stats, time.monotonic()
        frame = encode_frame(Stats(stats.running, stats.waiting, stats.batch_size, stats.generated_tokens))
        for writer in list(self._writers):
            _write(writer, frame)

    def _run(self, batch: list[Planned]) -> list[End]:
        """One batch, in the inference thread."""
        model = batch[0].model or self._model  # one batch is one model's requests
        if self._first_done:
            return run_planned(model, batch, self.limits.max_batch_size)
        # The first request pays for lazy initialisation (kernels, tokenizer caches); time it.
        self._first_done = True
        started = time.perf_counter()
        responses = run_planned(model, batch, self.limits.max_batch_size)
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


def _drop(pending: Pending | GenerationCall | asyncio.Task[None]) -> None:
    """Cancel one request: the batcher skips it if queued, discards its answer if it runs; a stream stops."""
    if isinstance(pending, asyncio.Task):  # still waiting for its model
        pending.cancel()
        return
    if isinstance(pending, GenerationCall):
        pending.cancel()  # its sequences leave the engine's batch at the next step
        return
    pending.future.cancel()
    sink = pending.payload.sink
    if sink is not None:
        sink.stopped.set()


def _deliver(
    writer: asyncio.StreamWriter,
    inflight: InFlight,
    pending: Pending,
    done: asyncio.Future[Any],
) -> None:
    request_id = pending.payload.request.id
    if inflight.get(request_id) is pending:
        del inflight[request_id]
    if done.cancelled():
        return
    exc = done.exception()
    _write(writer, encode_frame(error_response(request_id, exc) if exc is not None else done.result()))


def _write(writer: asyncio.StreamWriter, frame: bytes | bytearray) -> None:
    if not writer.is_closing():
        writer.write(frame)


async def _serve(args: argparse.Namespace, server: ReplicaServer) -> None:
    """Listen on the socket (or TCP); the ready line tells a watching backend (and a human) it serves.

    Over TCP (a replica on another node: the Ray backend) the address actually bound is written to
    the address file, renamed into place so a reader sees it whole: it is the readiness signal.
    """
    if args.listen is not None:
        host, port = args.listen
        listener = await asyncio.start_server(server.serve_connection, host=host, port=port)
        bound = listener.sockets[0].getsockname()
        if args.address_file is not None:
            partial_file = args.address_file.with_suffix(".tmp")
            partial_file.write_text(f"{host}:{bound[1]}")
            partial_file.rename(args.address_file)
    else:
        args.socket.unlink(missing_ok=True)
        listener = await asyncio.start_unix_server(server.serve_connection, path=str(args.socket))
    _print_timing(ready_at=time.time())
    print(READY_LINE, flush=True)
    async with listener:
        await listener.serve_forever()


def main(argv: list[str] | None = None) -> None:
    main_at = time.time()
    stamp_output()  # every line of the replica's log gets its time and stream (the logs API merges them)
    args = parse_args(argv)
    if args.cpus:
        os.sched_setaffinity(0, [int(cpu) for cpu in args.cpus.split(",")])
    threading.Thread(target=_exit_with_server, daemon=True, name="server-watch").start()
    # Below the server in the CPU's queue: when replicas fill every core, the gateway still admits, refuses
    # (an overload's 429s) and answers at once; replicas get every cycle the server leaves.
    os.nice(REPLICA_NICENESS)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    launch: ReplicaLaunch = args.launch
    apply_memory_backstop(launch.memory_backstop_mb)  # before the model loads: loading counts too
    started = time.perf_counter()
    phase = "load"
    host: ModelHost | None = None
    try:
        from hubserve.models.progress import Progress

        progress = Progress(partial(_write_phase, args.phase_file) if args.phase_file is not None else None)
        if launch.framework == "sklearn" and not launch.multi_model:
            forbid_torch()  # a scikit-learn replica never loads torch (worker/without_torch.py says why)
        else:
            import torch

            torch.set_num_threads(max(1, launch.threads))
            import transformers

            transformers.utils.logging.disable_progress_bar()  # bars would flood the replica's log
        from hubserve.models.loading import load_model
        from hubserve.models.sources import resolve_source
        from hubserve.models.task_inference import infer_task

        imported = time.perf_counter()
        if launch.multi_model:
            phase = "source"
            host = _model_host(launch)
            if args.info_file is not None:
                _write_multi_model_info(args.info_file, host, launch)
    except BaseException as exc:  # any failure to start is the endpoint's failure reason
        _fail(args.error_file, phase, exc)
    if host is not None:
        print(f"serving the models in {host.root}: {host.budget_mb:.0f} MB for loaded models", flush=True)
        _print_timing(main_at=main_at, imports_s=round(imported - started, 4), load_s=0.0, resolve_s=0.0)
        limits = resolve_limits(None, launch.device, launch.max_batch_size, launch.max_batch_tokens)
        generation = GenerationLimits(launch.default_max_new_tokens, launch.max_new_tokens_limit)
        asyncio.run(_serve(args, ReplicaServer(None, limits, launch.storage_options, generation, host=host)))
        return
    try:
        phase = "source"
        model_dir = resolve_source(
            launch.source, launch.revision, allowed_roots=[Path(root) for root in launch.allowed_roots],
            cache_dir=Path(launch.hub_cache) if launch.hub_cache else None,
        )  # fmt: skip
        resolved = time.perf_counter()
        phase = "task"
        task = launch.task or infer_task(model_dir)
        phase = "load"
        model = load_model(
            model_dir, task, custom_code=launch.custom_code, dtype=launch.dtype, device=launch.device,
            runtime=launch.runtime, cache_dir=Path(launch.runtime_cache) if launch.runtime_cache else None,
            threads=launch.threads, allow_missing_weights=launch.allow_missing_weights, progress=progress,
            trusted_types=launch.trusted_types, allow_pickle=launch.allow_pickle,
        )  # fmt: skip
        limits = resolve_limits(model, launch.device, launch.max_batch_size, launch.max_batch_tokens)
        if args.info_file is not None:
            _write_info(args.info_file, model, task, model_dir, limits, launch)
    except BaseException as exc:  # any failure to start is the endpoint's failure reason
        _fail(args.error_file, "weights" if getattr(exc, "phase", None) == "weights" else phase, exc)
    loaded = time.perf_counter()
    print(f"model loaded from {model_dir} in {loaded - started:.2f}s (task {task})", flush=True)
    _print_timing(
        main_at=main_at, imports_s=round(imported - started, 4), load_s=round(loaded - imported, 4),
        resolve_s=round(resolved - imported, 4),
    )  # fmt: skip
    print(
        f"batching: at most {limits.max_batch_size} sequences and {limits.max_batch_tokens} tokens a batch", flush=True
    )
    generation = GenerationLimits(launch.default_max_new_tokens, launch.max_new_tokens_limit)
    asyncio.run(_serve(args, ReplicaServer(model, limits, launch.storage_options, generation)))


def _model_host(launch: ReplicaLaunch) -> ModelHost:
    """The host of a multi-model replica: its root checked, its budget from the spec or the memory size."""
    from hubserve.models.loading import load_model
    from hubserve.models.sources import SourceError, is_local
    from hubserve.models.task_inference import infer_task
    from hubserve.worker import model_host
    from hubserve.worker.model_fetch import object_store_fetcher

    fetch = None
    roots = [Path(allowed) for allowed in launch.allowed_roots]
    if launch.source.startswith("s3://"):  # fetched on first call into the replica's own cache
        cache = Path(launch.runtime_cache).parent if launch.runtime_cache else Path(tempfile.gettempdir())
        root = cache / "multi-model" / launch.endpoint
        root.mkdir(parents=True, exist_ok=True)
        fetch = object_store_fetcher(launch.source, root, launch.storage_options)
        roots = [root]
    elif not is_local(launch.source):
        raise SourceError(
            f"a multi-model endpoint's source must be a local folder of model folders or an s3:// prefix; got '{launch.source}'"
        )
    else:
        root = Path(launch.source.removeprefix("file://")).expanduser().resolve()
        if roots and not any(root == allowed or allowed in root.parents for allowed in roots):
            raise SourceError(f"model folder '{root}' is outside the allowed model roots ({', '.join(map(str, roots))})")
        if not root.is_dir():
            raise SourceError(f"model folder '{root}' does not exist or is not a folder")
    if launch.models_memory_mb is not None:
        budget = float(launch.models_memory_mb)
    elif launch.memory_limit_mb is not None:
        budget = model_host.default_budget_mb(launch.memory_limit_mb, model_host.rss_mb())
    else:
        budget = float("inf")

    def load(folder: Path) -> Any:
        return load_model(
            folder, launch.task or infer_task(folder), custom_code=launch.custom_code, dtype=launch.dtype,
            device=launch.device, runtime=launch.runtime,
            cache_dir=Path(launch.runtime_cache) if launch.runtime_cache else None, threads=launch.threads,
            allow_missing_weights=launch.allow_missing_weights, trusted_types=launch.trusted_types,
            allow_pickle=launch.allow_pickle,
        )  # fmt: skip

    return model_host.ModelHost(root, load, budget, allowed_roots=roots or [root], fetch=fetch)


def _write_multi_model_info(path: Path, host: ModelHost, launch: ReplicaLaunch) -> None:
    """For describe: a multi-model replica has no one task or runtime; it names its folder and budget."""
    info = {
        "task": launch.task, "model_dir": str(host.root), "runtime": {"requested": launch.runtime, "chosen": launch.runtime},
        "multi_model": {"models_memory_mb": round(host.budget_mb, 1)},
    }  # fmt: skip
    path.write_text(json.dumps(info))


def _write_info(path: Path, model: Any, task: str, model_dir: Path, limits: Limits, launch: ReplicaLaunch) -> None:
    """What the replica chose, for describe: the task (inferred or given), the runtime, the batching limits,
    and for a generative task how it generates (``continuous``: the engine; ``one-at-a-time``: seq2seq)."""
    batching_info = {"max_batch_size": limits.max_batch_size, "max_batch_tokens": limits.max_batch_tokens}
    info: dict[str, Any] = {
        "task": task,
        "model_dir": str(model_dir),
        "runtime": model.runtime_info,
        "batching": batching_info,
    }
    if task in GENERATIVE_TASKS and not getattr(model, "custom", False):
        info["generation"] = {
            "batching": "continuous" if task == "text-generation" else "one-at-a-time",
            "default_max_new_tokens": launch.default_max_new_tokens, "max_new_tokens_limit": launch.max_new_tokens_limit,
        }  # fmt: skip
    path.write_text(json.dumps(info))


def _write_phase(path: Path, phase: str) -> None:
    """One JSON line per step, appended with one write: the backend reads whole lines only."""
    line = json.dumps({"phase": phase, "at": time.time()}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    print(f"starting: {phase}", flush=True)


def _fail(error_file: Path, phase: str, exc: BaseException) -> NoReturn:
    """Record why the replica could not start (the backend reads it as the failure reason) and exit 3."""
    traceback.print_exc()
    error_file.write_text(json.dumps({"phase": phase, "type": type(exc).__name__, "message": str(exc)}))
    sys.exit(3)


if __name__ == "__main__":
    main()
