"""Per-endpoint logs: each replica's output and hubserve's own events, timestamped, bounded, merged.

Every file under ``<home>/logs/<endpoint>/`` has lines ``<UTC time> <stream> <text>``: a
replica's ``<replica id>.log`` (streams stdout/stderr, stamped in the replica by `stamp`) and
``hubserve.log`` (streams event/access, written by `EventLog`). `read_logs` merges them in time
order. Output a replica writes below Python (a C library, a fatal signal) has no stamp and is
read as part of the stamped line before it.
"""

from hubserve.logs.events import EventLog
from hubserve.logs.reader import LogLine, parse_since, prune, read_logs

__all__ = ["EventLog", "LogLine", "parse_since", "prune", "read_logs"]
