"""Every path into a replica's log is stamped (stamp.py), and the reader never makes up a zero time."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from hubserve.logs import read_logs
from hubserve.logs.format import LINE, stamp_at

CHILD = textwrap.dedent(
    """
    import logging, os, subprocess, sys, warnings
    held = logging.StreamHandler()  # made before stamping, holding the original sys.stderr (as transformers' is)
    library = logging.getLogger("library")
    library.addHandler(held)
    library.propagate = False
    from hubserve.logs.stamp import stamp_output
    assert stamp_output() and stamp_output()  # the second call does nothing
    print("by print")
    library.warning("by a handler made before")
    warnings.warn("by warnings")
    os.write(2, b"by os.write to fd 2\\n")
    sys.__stderr__.write("by sys.__stderr__\\n")
    sys.__stderr__.flush()
    subprocess.run([sys.executable, "-c", "print('by a child process')"], check=True)
    print("bar 10%\\rbar 60%\\rbar 100%")
    os.write(1, b"unended at exit")
    sys.exit(3)
    """
)


def test_every_way_of_writing_is_stamped(tmp_path: Path) -> None:
    log = tmp_path / "r-1.log"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    with open(log, "ab") as out:
        done = subprocess.run([sys.executable, str(script)], stdout=out, stderr=out, timeout=60, check=False)
    assert done.returncode == 3
    raw = log.read_text().splitlines()
    assert raw and all(LINE.match(line) for line in raw), raw
    messages = {line.message: line.stream for line in read_logs(tmp_path, tail=100)}
    for message, stream in [
        ("by print", "stdout"), ("by a handler made before", "stderr"), ("by os.write to fd 2", "stderr"),
        ("by sys.__stderr__", "stderr"), ("by a child process", "stdout"), ("bar 100%", "stdout"),
        ("unended at exit", "stdout"),
    ]:  # fmt: skip
        assert messages.get(message) == stream, (message, messages)
    assert any(m.endswith("UserWarning: by warnings") for m in messages)


def test_unstamped_text_never_reads_as_time_zero(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("written before stamping\nand more\n2026-01-02T03:04:05.678Z stdout stamped\n")
    (tmp_path / "b.log").write_text("2026-01-02T03:04:06.000Z stderr fatal\nFatal Python error: Segmentation fault\n")
    never = tmp_path / "c.log"
    never.write_text("no stamp at all\n")
    os.utime(never, (1_800_000_000, 1_800_000_000))
    lines = read_logs(tmp_path, tail=100)
    assert [(line.source, line.time, line.stream, line.message) for line in lines] == [
        ("a", "2026-01-02T03:04:05.678Z", "raw", "written before stamping\nand more"),
        ("a", "2026-01-02T03:04:05.678Z", "stdout", "stamped"),
        ("b", "2026-01-02T03:04:06.000Z", "stderr", "fatal\nFatal Python error: Segmentation fault"),
        ("c", stamp_at(1_800_000_000), "raw", "no stamp at all"),
    ]
