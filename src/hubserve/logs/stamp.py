"""In the replica: stamp every line Python writes to stdout/stderr, and keep the file bounded.

No pipe and no thread: ``sys.stdout``/``sys.stderr`` are replaced by writers that add the time
and stream name and write straight to fds 1 and 2 (the replica's log file), so nothing is lost
if the replica dies. Past `max_bytes` the file is renamed to ``.1`` (one backup) and fds 1 and 2
reopened on a fresh file.
"""

from __future__ import annotations

import io
import os
import sys
import threading

from hubserve.logs.format import format_line

MAX_BYTES = 10 * 1024 * 1024  # per replica log file; one backup of the same size


class _Rotator:
    """Shared by both streams: one file behind fds 1 and 2."""

    def __init__(self, path: str, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
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
            os.dup2(fresh, 1)
            os.dup2(fresh, 2)
            os.close(fresh)


class StampedStream(io.TextIOBase):
    """A text stream that writes whole lines, each prefixed with the time and the stream name."""

    def __init__(self, fd: int, name: str, rotator: _Rotator) -> None:
        self._fd = fd
        self._name = name
        self._rotator = rotator
        self._partial = ""

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        if lines:
            data = "".join(format_line(self._name, line.rstrip("\r")) for line in lines)
            self._rotator.write(self._fd, data.encode("utf-8", "replace"))
        return len(text)

    def flush(self) -> None:
        """Lines are written as they complete; a partial line waits for its end (or `close`)."""

    def close(self) -> None:
        if self._partial:
            self.write("\n")
        super().close()


def stamp_output(max_bytes: int = MAX_BYTES) -> bool:
    """Stamp this process's stdout and stderr when they go to a regular file; False when left alone."""
    try:
        path = os.readlink("/proc/self/fd/1")
    except OSError:
        return False
    if not path.startswith("/") or not os.path.isfile(path):
        return False  # a terminal or a pipe: someone is reading it live
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    rotator = _Rotator(path, max_bytes)
    sys.stdout = StampedStream(1, "stdout", rotator)
    sys.stderr = StampedStream(2, "stderr", rotator)
    return True
