"""In the replica: every line written to stdout or stderr gets its time and stream; the file stays bounded.

The replica starts with fds 1 and 2 on its log file. ``stamp_output`` keeps the file on a
descriptor of its own and stamps everything on the way in, by two paths:

- Python's ``sys.stdout``/``sys.stderr`` (print, warnings, tqdm, logging) become
  ``StampedStream``s that stamp each whole line and write it straight to the file, so nothing of
  theirs is lost if the replica dies. Logging handlers made before (transformers' own, created
  in the zygote before the fork, holds the zygote's ``sys.stderr``) are pointed at them too.
- Fds 1 and 2 themselves become pipes, one each, read by one thread that stamps each line as it
  arrives: what C code, ``os.write``, ``sys.__stderr__`` or a child process (the ONNX exporter)
  writes below Python. ``finish`` drains them before the replica exits.

Past ``max_bytes`` the file is renamed to ``.1`` (one backup) and its descriptor reopened on a
fresh file. A fatal signal's traceback (``faulthandler``) goes to the file directly, since no
thread runs then: unstamped, it is read as part of the line before it (``reader``).
"""

from __future__ import annotations

import atexit
import faulthandler
import io
import logging
import os
import selectors
import sys
import threading
from typing import Any

from hubserve.logs.format import format_line

MAX_BYTES = 10 * 1024 * 1024  # per replica log file; one backup of the same size
_MAX_PARTIAL = 64 * 1024  # a pipe's line longer than this is written in pieces
_FINISH_TIMEOUT_S = 1.0


class _Rotator:
    """One log file behind ``fds`` (by default 1 and 2): writes whole lines, rotates past ``max_bytes``."""

    def __init__(self, path: str, max_bytes: int, fds: tuple[int, ...] = (1, 2)) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.fds = fds
        self.lock = threading.Lock()

    def write(self, fd: int, data: bytes) -> None:
        with self.lock:
            os.write(fd, data)
            try:
                if os.fstat(fd).st_size <= self.max_bytes:
                    return
                os.replace(self.path, self.path + ".1")
                fresh = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError:
                return
            for target in self.fds:
                os.dup2(fresh, target, inheritable=target in (0, 1, 2))
            os.close(fresh)


def _last_segment(line: str) -> str:
    """What a terminal would show of a line rewritten with carriage returns (a progress bar)."""
    if "\r" not in line:
        return line
    segments = [segment for segment in line.split("\r") if segment]
    return segments[-1] if segments else ""


class StampedStream(io.TextIOBase):
    """A text stream that writes whole lines to ``fd``, each prefixed with the time and the stream name.

    ``fileno`` is what code that writes below Python is given (the pipe on fd 1 or 2, stamped by
    the stamping thread); ``fd`` itself by default.
    """

    def __init__(self, fd: int, name: str, rotator: _Rotator, fileno: int | None = None) -> None:
        self._fd = fd
        self._name = name
        self._rotator = rotator
        self._fileno = fd if fileno is None else fileno
        self._partial = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]  # io.TextIOBase's is a read-only attribute
        return "utf-8"

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fileno

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        if lines:
            data = "".join(format_line(self._name, _last_segment(line)) for line in lines)
            self._rotator.write(self._fd, data.encode("utf-8", "replace"))
        return len(text)

    def flush(self) -> None:
        """Lines are written as they complete; a partial line waits for its end (or `close`)."""

    def finish(self) -> None:
        """Write a partial line as a line of its own (the process is about to exit)."""
        if self._partial:
            self.write("\n")

    def close(self) -> None:
        self.finish()
        super().close()


class _PipeStamper:
    """Fds 1 and 2 as pipes; one thread stamps each line that arrives on them and writes it to ``log_fd``."""

    def __init__(self, log_fd: int, rotator: _Rotator) -> None:
        self._log_fd = log_fd
        self._rotator = rotator
        self._names: dict[int, str] = {}
        self._partial: dict[int, bytes] = {}
        for target, name in ((1, "stdout"), (2, "stderr")):
            read_end, write_end = os.pipe()  # not inherited: only fds 1 and 2 reach child processes
            os.dup2(write_end, target)
            os.close(write_end)
            self._names[read_end] = name
            self._partial[read_end] = b""
        self._thread = threading.Thread(target=self._run, name="log-stamp", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with selectors.DefaultSelector() as selector:
                for read_end in self._names:
                    selector.register(read_end, selectors.EVENT_READ)
                open_ends = set(self._names)
                while open_ends:
                    for key, _ in selector.select():
                        fd = int(key.fd)
                        data = os.read(fd, 65536)
                        if data:
                            self._take(fd, data)
                            continue
                        selector.unregister(fd)
                        open_ends.discard(fd)
                        self._take(fd, b"\n" if self._partial[fd] else b"")  # the last line, unended
        except BaseException:  # never block the replica's writers: fds 1 and 2 go to the file, unstamped
            os.dup2(self._log_fd, 1)
            os.dup2(self._log_fd, 2)
        finally:
            for read_end in self._names:
                try:
                    os.close(read_end)
                except OSError:
                    pass

    def _take(self, fd: int, data: bytes) -> None:
        lines = (self._partial[fd] + data).split(b"\n")
        rest = lines.pop()
        if len(rest) > _MAX_PARTIAL:
            lines.append(rest)
            rest = b""
        self._partial[fd] = rest
        if lines:
            name = self._names[fd]
            text = "".join(format_line(name, _last_segment(line.decode("utf-8", "replace"))) for line in lines)
            self._rotator.write(self._log_fd, text.encode("utf-8", "replace"))

    def finish(self, timeout: float) -> None:
        """Point fds 1 and 2 at the file again, so the pipes end, and wait for the thread to write what they held."""
        os.dup2(self._log_fd, 1)
        os.dup2(self._log_fd, 2)
        self._thread.join(timeout)  # a child process still holding a pipe keeps it open: not for long


_stamper: _PipeStamper | None = None


def stamp_output(max_bytes: int = MAX_BYTES) -> bool:
    """Stamp this process's stdout and stderr when they go to a regular file; False when left alone.

    Called again, it does nothing (the replica's ``python -m`` entry calls it before its imports,
    ``main`` again for a forked replica).
    """
    global _stamper
    if _stamper is not None or isinstance(sys.stdout, StampedStream):
        return True
    try:
        path = os.readlink("/proc/self/fd/1")
    except OSError:
        return False
    if not path.startswith("/") or not os.path.isfile(path):
        return False  # a terminal or a pipe: someone is reading it live
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    log_fd = os.dup(1)  # the file, on a descriptor of our own (not inherited)
    rotator = _Rotator(path, max_bytes, fds=(log_fd,))
    before = {id(stream): "stdout" for stream in (sys.stdout, sys.__stdout__)}
    before.update({id(stream): "stderr" for stream in (sys.stderr, sys.__stderr__)})
    sys.stdout = StampedStream(log_fd, "stdout", rotator, fileno=1)
    sys.stderr = StampedStream(log_fd, "stderr", rotator, fileno=2)
    _retarget_handlers(before)
    _stamper = _PipeStamper(log_fd, rotator)
    faulthandler.enable(file=log_fd)
    os.register_at_fork(after_in_child=lambda: setattr(rotator, "lock", threading.Lock()))
    atexit.register(finish)
    return True


def finish() -> None:
    """Before the replica exits: partial lines and what is still in the pipes reach the file, stamped."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, StampedStream):
            stream.finish()
    if _stamper is not None:
        _stamper.finish(_FINISH_TIMEOUT_S)


def _retarget_handlers(before: dict[int, str]) -> None:
    """Logging handlers that hold the streams we replaced write through the stamped ones instead."""
    manager: Any = logging.Logger.manager
    loggers = [logging.getLogger(), *(lg for lg in list(manager.loggerDict.values()) if isinstance(lg, logging.Logger))]
    for logger in loggers:
        for handler in list(logger.handlers):
            if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
                continue
            name = before.get(id(getattr(handler, "stream", None)))
            if name is not None:
                try:
                    handler.setStream(sys.stdout if name == "stdout" else sys.stderr)
                except AttributeError:
                    pass  # a handler whose stream is a read-only property follows sys.stderr by itself
