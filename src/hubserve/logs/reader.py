"""Read an endpoint's log files as one time-ordered list; prune old replicas' files to a size."""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from hubserve.errors import ValidationError
from hubserve.logs.format import LINE, stamp_at

DEFAULT_TAIL = 200
MAX_TAIL = 10_000
ENDPOINT_MAX_BYTES = 100 * 1024 * 1024  # every file of one endpoint together; oldest replicas go first


@dataclasses.dataclass(frozen=True)
class LogLine:
    time: str  # UTC, as written: sortable text
    source: str  # "hubserve" or the replica id
    stream: str  # stdout, stderr, event, access
    message: str

    def as_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def parse_since(text: str | None) -> str | None:
    """An ISO time ('2026-11-22T15:00:00Z') or a duration back from now ('30s', '5m', '2h') -> stamp text."""
    if not text:
        return None
    text = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        moment = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=float(text[:-1]) * units[text[-1]])
    else:
        try:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                f"since={text!r} is neither a time (2026-11-22T15:00:00Z) nor a duration (30s, 5m, 2h)"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _lines_of(path: Path, source: str) -> Iterator[LogLine]:
    """Stamped lines of one file; an unstamped one never gets a made-up time.

    Unstamped text (a fatal signal's traceback, a file written before stamping) joins the stamped
    line before it; unstamped text at the start of a file is one ``raw`` line with the time of the
    first stamp after it (it was written before that line), or the file's mtime when none follows.
    """
    current: LogLine | None = None
    leading: list[str] = []
    try:
        handle = path.open("r", encoding="utf-8", errors="replace")
    except OSError:
        return
    with handle:
        for raw in handle:
            raw = raw.rstrip("\n")
            match = LINE.match(raw)
            if match:
                if current is not None:
                    yield current
                elif leading:
                    yield LogLine(match.group(1), source, "raw", "\n".join(leading))
                    leading = []
                current = LogLine(match.group(1), source, match.group(2), match.group(3))
            elif current is not None:
                current = dataclasses.replace(current, message=current.message + "\n" + raw)
            elif raw or leading:
                leading.append(raw)
    if current is not None:
        yield current
    elif leading:
        try:
            written = stamp_at(path.stat().st_mtime)
        except OSError:
            return  # removed while we read it
        yield LogLine(written, source, "raw", "\n".join(leading).rstrip("\n"))


def _source_lines(paths: list[Path], source: str) -> Iterator[LogLine]:
    for path in paths:
        yield from _lines_of(path, source)


def _files(folder: Path) -> dict[str, list[Path]]:
    """source -> its files, the rotated backup first."""
    sources: dict[str, list[Path]] = {}
    for path in sorted(folder.glob("*.log")):
        backup = path.with_name(path.name + ".1")
        sources[path.stem] = ([backup] if backup.exists() else []) + [path]
    return sources


def read_logs(folder: Path, since: str | None = None, tail: int = DEFAULT_TAIL, source: str | None = None) -> list[LogLine]:
    """The last `tail` lines at or after `since`, every source merged in time order."""
    if not 1 <= tail <= MAX_TAIL:
        raise ValidationError(f"tail must be between 1 and {MAX_TAIL}")
    streams = []
    for name, paths in _files(folder).items():
        if source is not None and name != source:
            continue
        streams.append(_source_lines(paths, name))
    merged = heapq.merge(*streams, key=lambda line: line.time)
    kept: deque[LogLine] = deque(maxlen=tail)
    for line in merged:
        if since is None or line.time >= since:
            kept.append(line)
    return list(kept)


def prune(folder: Path, max_bytes: int = ENDPOINT_MAX_BYTES, keep: set[str] | None = None) -> list[Path]:
    """Delete the oldest files of replicas not in `keep` until the folder fits `max_bytes`."""
    files = [p for p in folder.glob("*.log*") if p.is_file()]
    total = sum(p.stat().st_size for p in files)
    removed: list[Path] = []
    keep = (keep or set()) | {"hubserve"}
    for path in sorted(files, key=lambda p: p.stat().st_mtime):
        if total <= max_bytes:
            break
        if path.name.split(".log")[0] in keep:
            continue
        total -= path.stat().st_size
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
