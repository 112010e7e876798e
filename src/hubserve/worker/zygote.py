"""The zygote: imports torch, transformers and the replica's modules once, then forks replicas.

Importing those costs seconds; forking a process that already holds them costs milliseconds,
so every replica the server starts is a fork of this process rather than a fresh interpreter.

    python -m hubserve.worker.zygote      (started by backends/zygote.py; speaks on stdin/stdout)

The server's backend sends ``Spawn`` and ``Kill`` frames on stdin; the zygote answers with
``ZygoteReady`` (once, when its imports are done), ``Spawned`` (the new replica's pid) and
``Exited`` (a replica's exit code) on stdout. Frames are protocol.py's length-prefixed msgpack.
It exits when stdin closes: the server is gone, and replicas follow (worker/server.py watches
the server, not the zygote, so replicas outlive a zygote that dies while the server lives).

The rule that makes forking safe: this process never starts a thread, an event loop, a torch
op or a tokenizer call. ``fork`` copies only the calling thread, so a thread pool started here
would be missing, or holding a lock forever, in every replica. The loop below is one thread:
a selector over the control pipe and a self-pipe that SIGCHLD writes to (signal.set_wakeup_fd).
OpenBLAS starts its threads when numpy loads it, so the zygote imports with
OPENBLAS_NUM_THREADS=1, and numpy's BLAS stays single-threaded in replicas.
"""

from __future__ import annotations

import ctypes
import gc
import importlib
import os
import selectors
import signal
import sys
import time
import traceback
import warnings
from typing import NoReturn

from hubserve.worker.protocol import (
    Exited,
    FrameBuffer,
    Kill,
    Spawn,
    Spawned,
    ZygoteCommand,
    ZygoteReady,
    decode_zygote_command,
    encode_control_frame,
)
from hubserve.worker.sandbox import drop_privileges, take_run_as
from hubserve.worker.without_torch import forbid_torch

# What a replica would otherwise import after the fork: torch, transformers and its pipelines,
# the modelling and tokenizer modules of the common architectures, sentence-transformers and
# hubserve's own replica modules (the list was checked by loading every task's tiny model after
# preload() and looking for new entries in sys.modules). A module that fails to import is
# skipped and reported in the zygote's log. Marian's tokenizer needs sentencepiece, so it is
# left to the replicas that use it.
_ARCHITECTURES = (
    "bert", "distilbert", "roberta", "xlm_roberta", "deberta_v2", "mpnet", "bart", "t5", "gpt2", "marian", "llama",
)  # fmt: skip
_TOKENIZERS = (
    "bert.tokenization_bert", "bert.tokenization_bert_legacy", "distilbert.tokenization_distilbert",
    "roberta.tokenization_roberta", "xlm_roberta.tokenization_xlm_roberta", "deberta_v2.tokenization_deberta_v2",
    "mpnet.tokenization_mpnet", "bart.tokenization_bart", "t5.tokenization_t5", "gpt2.tokenization_gpt2",
)  # fmt: skip
PRELOAD_MODULES: tuple[str, ...] = (
    "numpy",
    "torch",
    "transformers",
    "transformers.pipelines",
    "transformers.models.auto.modeling_auto",
    "transformers.models.auto.tokenization_auto",
    *(f"transformers.models.{arch}.modeling_{arch}" for arch in _ARCHITECTURES),
    *(f"transformers.models.{arch}.configuration_{arch}" for arch in _ARCHITECTURES),
    *(f"transformers.models.{name}" for name in _TOKENIZERS),
    "transformers.pipelines.text_classification",
    "transformers.pipelines.token_classification",
    "transformers.pipelines.fill_mask",
    "transformers.pipelines.feature_extraction",
    "transformers.pipelines.zero_shot_classification",
    "transformers.pipelines.text_generation",
    "sentence_transformers",
    "sentence_transformers.models.Transformer",  # the paths modules.json names (deprecated aliases)
    "sentence_transformers.models.Pooling",
    "sentence_transformers.models.Normalize",
    "hubserve.worker.server",
    "hubserve.worker.handling",
    "hubserve.worker.batcher",
    "hubserve.worker.launch",
    "hubserve.models.sources",  # a replica resolves its source and infers its task itself
    "hubserve.models.task_inference",
    "hubserve.models.batching",
    "hubserve.models.loading",
    "hubserve.models.predictors",
    "hubserve.models.qa",
    "hubserve.models.seq2seq",
    "hubserve.models.textgen.seq2seq",  # imported by the first encoder-decoder stream
    "hubserve.models.custom",
    "hubserve.models.weights",
)

# The light zygote's: what a scikit-learn replica imports (models/tabular.py), and never torch
# (worker/without_torch.py); skops.io builds its trusted-type list by importing every scikit-learn module.
LIGHT_PRELOAD_MODULES: tuple[str, ...] = (
    "numpy",
    "scipy",
    "sklearn",
    "sklearn.pipeline",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.preprocessing",
    "sklearn.feature_extraction.text",
    "skops.io",
    "pandas",
    "joblib",
    "hubserve.worker.server",
    "hubserve.worker.handling",
    "hubserve.worker.batcher",
    "hubserve.worker.launch",
    "hubserve.models.sources",
    "hubserve.models.task_inference",
    "hubserve.models.batching",
    "hubserve.models.loading",
    "hubserve.models.tabular",
)
LIGHT_FLAG = "--light"

# Set for the imports, and so inherited by replicas: the OpenBLAS they share was loaded
# single-threaded (torch does the models' math, with its own `--threads`); tokenizers' thread
# pool stays off unless the server's environment says otherwise (server.py's default too).
# pyarrow (transformers imports pandas, pandas imports pyarrow where ray[data] installed it) starts
# its jemalloc's background thread when loaded: off, or the zygote would refuse to fork.
_IMPORT_ENV = {"OPENBLAS_NUM_THREADS": "1", "JE_ARROW_MALLOC_CONF": "background_thread:false"}
_IMPORT_ENV_DEFAULTS = {"TOKENIZERS_PARALLELISM": "false"}
# Bytes of command line a replica may write over (set_command_line). Only what ps shows is cut to
# this room (the launch JSON goes last, so the short flags stay visible); the argv a replica parses
# comes whole in its Spawn frame.
ARGV_ROOM = 4096


def preload(light: bool = False) -> list[str]:
    """Import what replicas need and build transformers' lazy tables; never starts a thread.

    ``light``: the scikit-learn replicas' zygote, which makes torch unimportable first. Returns the
    preloads that failed, as ``"name: why"``.
    """
    skipped = []
    if light:
        forbid_torch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation notices of aliases nobody here asked for
        for name in LIGHT_PRELOAD_MODULES if light else PRELOAD_MODULES:
            try:
                importlib.import_module(name)
            except Exception as exc:  # an optional architecture or package missing from this install
                skipped.append(f"{name}: {type(exc).__name__}: {exc}")
    if light:
        return skipped
    try:
        # transformers builds its checkpoint-conversion table (about a thousand regular
        # expressions, ~0.6 s) on the first from_pretrained and caches it: pay that once, here.
        from transformers.conversion_mapping import get_checkpoint_conversion_mapping

        get_checkpoint_conversion_mapping("bert")
    except Exception as exc:
        skipped.append(f"conversion mapping: {type(exc).__name__}: {exc}")
    try:
        import transformers

        transformers.utils.logging.disable_progress_bar()
    except Exception:
        pass
    return skipped


def _threads() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 1


class Zygote:
    """The fork loop: one thread, a selector over the control pipe and the SIGCHLD self-pipe."""

    def __init__(self, control_in: int, control_out: int) -> None:
        self._in = control_in
        self._out = control_out
        self._server = os.getppid()  # replicas watch the server, so they outlive this process if it dies
        self._frames = FrameBuffer()
        self._children: dict[int, str] = {}  # pid -> replica id, until reaped
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # the C handler writes to the wake fd
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._in, selectors.EVENT_READ, "control")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "signal")

    def send(self, message: ZygoteReady | Spawned | Exited) -> None:
        os.write(self._out, encode_control_frame(message))  # frames are small: one write, pipe-atomic

    def run(self) -> None:
        """Serve until the control pipe closes."""
        while True:
            for key, _ in self._selector.select():
                if key.data == "signal":
                    self._drain_wakeups()
                    self._reap()
                    continue
                data = os.read(self._in, 1 << 16)
                if not data:
                    self._shutdown()
                    return
                for payload in self._frames.feed(data):
                    self._handle(decode_zygote_command(payload))

    def _handle(self, command: ZygoteCommand) -> None:
        if isinstance(command, Spawn):
            self.send(self._spawn(command))
        elif isinstance(command, Kill):
            for pid, replica_id in self._children.items():
                if replica_id == command.replica_id:
                    # Still unreaped, so the pid is still this replica's (no reuse race).
                    try:
                        os.kill(pid, command.signal)
                    except ProcessLookupError:
                        pass
                    if command.signal == signal.SIGKILL:
                        kill_group(pid)

    def _spawn(self, command: Spawn) -> Spawned:
        sys.stdout.flush()
        sys.stderr.flush()  # or the child would write the zygote's buffered text into its own log
        try:
            pid = os.fork()
        except OSError as exc:
            return Spawned(command.replica_id, 0, f"fork failed: {exc}")
        if pid == 0:
            self._become_replica(command)
        self._children[pid] = command.replica_id
        return Spawned(command.replica_id, pid)

    def _become_replica(self, command: Spawn) -> NoReturn:
        """In the forked child: become a replica process, run it, and never return to the loop."""
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            self._selector.close()
            for fd in (self._in, self._out, self._wake_r, self._wake_w):
                os.close(fd)
            os.setsid()  # own session, like `start_new_session`: the terminal's Ctrl-C reaches the server only
            log_fd = os.open(command.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            os.close(log_fd)
            os.environ.update(command.env)
            os.environ["HUBSERVE_REPLICA_SERVER_PID"] = str(self._server)  # worker/server.py's SERVER_PID_ENV
            if command.cpus:
                os.sched_setaffinity(0, command.cpus)
            run_as, argv = take_run_as(command.argv)
            if run_as:
                drop_privileges(run_as)  # the zygote stays root; each replica gives it up before loading
            set_command_line([sys.executable, "-m", "hubserve.worker", *argv])
            _after_fork_in_replica()
            import hubserve.worker

            sys.argv = [os.path.join(os.path.dirname(hubserve.worker.__file__), "__main__.py"), *argv]
            from hubserve.worker.server import main

            main(argv)
            code = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
                from hubserve.logs.stamp import finish

                finish()  # os._exit skips atexit: what the stamping thread still holds reaches the log now
            finally:
                os._exit(code)

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            replica_id = self._children.pop(pid, "")
            kill_group(pid)  # what the replica forked dies with it (a group's id is not reused while it lives)
            self.send(Exited(replica_id, pid, os.waitstatus_to_exitcode(status)))

    def _shutdown(self) -> None:
        """The server is gone: replicas would notice within a second; tell them now."""
        for pid in list(self._children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def kill_group(pgid: int) -> None:
    """SIGKILL every process left in a replica's process group (its session's group: the replica's pid)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _after_fork_in_replica() -> None:
    """Undo what forking shared that a fresh process would not: numpy's global random state."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def set_command_line(args: list[str]) -> None:
    """Rewrite what ps and /proc/<pid>/cmdline show for this process, within its original argv's room.

    A fork keeps the zygote's command line; a replica writes its own in its place (the way
    setproctitle does), so it reads exactly like a fresh ``python -m hubserve.worker ...`` one.
    The zygote is started with a blank argument that makes the room (``ARGV_ROOM``).
    """
    try:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end: fields 48 and 49 of stat
        room = end - start
        if not start or room < 2:
            return
        text = "\0".join(args).encode()[: room - 1]
        ctypes.memset(start, 0, room)
        ctypes.memmove(start, text, len(text))
    except (OSError, ValueError, IndexError):
        pass  # an old kernel or a locked-down /proc: the command line stays the zygote's


def main() -> None:
    light = LIGHT_FLAG in sys.argv
    set_command_line([sys.executable, "-m", "hubserve.worker.zygote", *([LIGHT_FLAG] if light else [])])  # hide the room
    # The control pipe gets private descriptors; fd 0 becomes /dev/null and fd 1 goes to stderr
    # (the zygote's log), so nothing an import prints can corrupt a frame.
    control_in, control_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)

    os.environ.update(_IMPORT_ENV)
    for name, value in _IMPORT_ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    started = time.perf_counter()
    skipped = preload(light)
    gc.collect()
    gc.freeze()  # imported objects move to a permanent generation: replicas' collections leave them alone
    preload_s = time.perf_counter() - started
    for line in skipped:
        print(f"zygote: preload skipped {line}", file=sys.stderr, flush=True)
    if _threads() != 1:  # a library started a thread while importing: forks would be unsafe
        print(f"zygote: {_threads()} threads after preload; refusing to fork", file=sys.stderr, flush=True)
        sys.exit(2)
    print(f"zygote: ready in {preload_s:.2f}s (pid {os.getpid()})", file=sys.stderr, flush=True)

    zygote = Zygote(control_in, control_out)
    try:
        zygote.send(ZygoteReady(os.getpid(), round(preload_s, 3), skipped))
        zygote.run()
    except BrokenPipeError:  # the server went away mid-write
        pass


if __name__ == "__main__":
    main()
