"""The one line format every endpoint log file uses."""

from __future__ import annotations

import datetime as dt
import re

LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (.*)$")


def now_stamp() -> str:
    """UTC, millisecond resolution, sortable as text."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def stamp_at(seconds: float) -> str:
    """``now_stamp``'s format for a moment given as seconds since the epoch (a file's mtime)."""
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def format_line(stream: str, text: str) -> str:
    return f"{now_stamp()} {stream} {text}\n"


def message_of(line: str) -> str:
    """The text of a log line without its stamp (unstamped lines unchanged)."""
    match = LINE.match(line.rstrip("\n"))
    return match.group(3) if match else line.rstrip("\n")
