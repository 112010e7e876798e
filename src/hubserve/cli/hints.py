"""Hints in the CLI's words: an error that says "resume it with POST /v1/endpoints/x/resume" is
printed as "resume it with `hubserve endpoint resume x`".

The server's error bodies name REST routes, which is right for every HTTP client; a person at the
CLI should be told the command to type. The table maps each route a server message may name to
that command, so any message, whichever part of the server wrote it, reads in the CLI's words.
Routes with no command here, and routes with a query (a command's flags differ), are left as they are.
"""

from __future__ import annotations

import re

_SEGMENT = r"([^/\s]+)"

# (method, path pattern, command); the path's groups fill the command's {0}, {1}.
_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("POST", r"/v1/endpoints", "hubserve endpoint create"),
    ("GET", r"/v1/endpoints", "hubserve endpoint list"),
    ("GET", rf"/v1/endpoints/{_SEGMENT}", "hubserve endpoint describe {0}"),
    ("PUT", rf"/v1/endpoints/{_SEGMENT}", "hubserve endpoint update {0} -f SPEC"),
    ("PATCH", rf"/v1/endpoints/{_SEGMENT}", "hubserve endpoint update {0}"),
    ("DELETE", rf"/v1/endpoints/{_SEGMENT}", "hubserve endpoint delete {0}"),
    ("POST", rf"/v1/endpoints/{_SEGMENT}/pause", "hubserve endpoint pause {0}"),
    ("POST", rf"/v1/endpoints/{_SEGMENT}/resume", "hubserve endpoint resume {0}"),
    ("POST", rf"/v1/endpoints/{_SEGMENT}/scale-to-zero", "hubserve endpoint scale-to-zero {0}"),
    ("GET", rf"/v1/endpoints/{_SEGMENT}/logs", "hubserve endpoint logs {0}"),
    ("GET", rf"/v1/endpoints/{_SEGMENT}/metrics", "hubserve endpoint metrics {0}"),
    ("POST", rf"/endpoints/{_SEGMENT}", "hubserve invoke {0}"),
    ("POST", rf"/endpoints/{_SEGMENT}/async-invocations", "hubserve async invoke {0}"),
    ("GET", rf"/endpoints/{_SEGMENT}/async-invocations", "hubserve async list {0}"),
    ("GET", rf"/endpoints/{_SEGMENT}/async-invocations/{_SEGMENT}", "hubserve async get {0} {1}"),
    ("GET", r"/v1/batch-jobs", "hubserve batch list"),
    ("GET", rf"/v1/batch-jobs/{_SEGMENT}", "hubserve batch describe {0}"),
    ("POST", rf"/v1/batch-jobs/{_SEGMENT}/stop", "hubserve batch stop {0}"),
    ("POST", rf"/v1/batch-jobs/{_SEGMENT}/start", "hubserve batch start {0}"),
    ("GET", r"/v1/tokens", "hubserve token list"),
    ("DELETE", rf"/v1/tokens/{_SEGMENT}", "hubserve token revoke {0}"),
    ("GET", r"/v1/audit", "hubserve audit"),
)
_COMPILED = tuple((method, re.compile(path), command) for method, path, command in _COMMANDS)

# "METHOD /path" in running text; a sentence's final '.' (or ',', ';', ')') is not part of the path.
_ROUTE = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE) (/[^\s,;)`'\"]*[^\s,;)`'\".])")


def _command(match: re.Match[str]) -> str:
    method, path = match.group(1), match.group(2)
    for wanted, pattern, command in _COMPILED:
        found = pattern.fullmatch(path) if wanted == method else None
        if found:
            return "`" + command.format(*found.groups()) + "`"
    return match.group(0)


def in_cli_words(message: str) -> str:
    """``message`` with every REST route that a CLI command does replaced by that command."""
    return _ROUTE.sub(_command, message)
