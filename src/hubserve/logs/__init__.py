"""Per-endpoint logs: each replica's output and hubserve's own events, timestamped, bounded, merged.

Every file under ``<home>/logs/<endpoint>/`` has lines ``<UTC time> <stream> <text>``: a
replica's ``<replica id>.log`` (streams stdout/stderr, stamped in the replica by `stamp`) and
``hubserve.log`` (streams event/access, written by `EventLog`). `read_logs` merges them in time
order. A replica's output is stamped whatever writes it (Python, a C library, a child process;
`stamp`); the only unstamped text left, a fatal signal's traceback, is read as part of the
stamped line before it, and the reader never makes up a time for a line.
"""

from hubserve.logs.events import EventLog
from hubserve.logs.reader import LogLine, parse_since, prune, read_logs

__all__ = ["EventLog", "LogLine", "parse_since", "prune", "read_logs"]
