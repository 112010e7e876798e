"""A closed-loop HTTP/1.1 load generator that stays out of the way of the server it measures.

N keep-alive connections on 127.0.0.1, each sending the same pre-encoded POST and waiting
for the whole response before the next (so N is the concurrency the server sees). A run is
bounded by a request count, a duration or both: no request starts after either bound, and the
ones in flight are waited for. Raw asyncio streams on uvloop, one pre-built request, a minimal
response parser: no HTTP client library on the hot path, so a 2-core machine spends its CPU on
the server, not here. The loadgen reports its own CPU time so every figure says what it cost.

Per request it records the latency (first byte written to last byte read), the status and
hubserve's ``x-model-latency-ms`` / ``x-overhead-latency-ms`` headers when present.

    python benchmarks/loadgen.py --url http://127.0.0.1:8080/endpoints/sst2 --body-file body.json \\
        --concurrency 32 --duration 20 [--requests 0] [--warmup 32] [--out result.json]
    python benchmarks/loadgen.py --serve-noop 9000    # a raw HTTP server that answers at once:
                                                      # the loadgen's own ceiling is measured on it
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from hubserve.loadtest.driver import (  # the same client core as `hubserve bench`
    Budget,
    read_response,
    use_uvloop,
)

MODEL_HEADER = b"x-model-latency-ms"
OVERHEAD_HEADER = b"x-overhead-latency-ms"


@dataclass
class Results:
    """Everything one run measured; written as JSON (``common.LoadResult`` reads it back)."""

    concurrency: int
    completed: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    failures: int = 0  # connection errors and timeouts: no status at all
    failure_kinds: dict[str, int] = field(default_factory=dict)  # exception name -> count
    latencies_ms: list[float] = field(default_factory=list)
    model_ms: list[float] = field(default_factory=list)
    overhead_ms: list[float] = field(default_factory=list)


class Connection:
    """One keep-alive connection; reconnects when the server closes it."""

    def __init__(self, host: str, port: int, request: bytes, timeout: float) -> None:
        self.host, self.port, self.request, self.timeout = host, port, request, timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self) -> tuple[int, dict[bytes, bytes]]:
        """Send the request once; return the status and the headers of its response."""
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 22)
        assert self.reader is not None
        self.writer.write(self.request)
        status, headers, keep_alive = await asyncio.wait_for(read_response(self.reader), self.timeout)
        if not keep_alive:
            self.close()
        return status, headers

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _drive(connection: Connection, budget: Budget, results: Results | None) -> None:
    """One closed loop: send, wait for the answer, record it, repeat while the budget allows."""
    while budget.take():
        started = time.perf_counter()
        try:
            status, headers = await connection.send()
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            connection.close()
            if results is not None:
                results.failures += 1
                kind = type(exc).__name__
                results.failure_kinds[kind] = results.failure_kinds.get(kind, 0) + 1
            await asyncio.sleep(0.01)  # a refused connection must not turn into a busy loop
            continue
        if results is None:
            continue
        results.latencies_ms.append((time.perf_counter() - started) * 1000.0)
        results.statuses[str(status)] = results.statuses.get(str(status), 0) + 1
        if MODEL_HEADER in headers:
            results.model_ms.append(float(headers[MODEL_HEADER]))
        if OVERHEAD_HEADER in headers:
            results.overhead_ms.append(float(headers[OVERHEAD_HEADER]))


def build_request(url: str, body: bytes) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n")  # fmt: skip
    return host, port, head.encode() + body


async def run(url: str, body: bytes, concurrency: int, requests: int, duration: float, warmup: int, timeout: float) -> Results:
    host, port, request = build_request(url, body)
    connections = [Connection(host, port, request, timeout) for _ in range(concurrency)]
    if warmup > 0:
        warm = Budget(warmup, 0.0)
        await asyncio.gather(*(_drive(c, warm, None) for c in connections))
    results = Results(concurrency=concurrency)
    budget = Budget(requests, duration)
    cpu_started, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(_drive(c, budget, results) for c in connections))
    results.wall_s = time.perf_counter() - started
    results.cpu_s = time.process_time() - cpu_started
    results.completed = len(results.latencies_ms)
    for connection in connections:
        connection.close()
    return results


# -- a server that answers at once: the loadgen's ceiling ---------------------------------------

_NOOP_RESPONSE = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{"ok":true}'


class NoopProtocol(asyncio.Protocol):
    """Answers every complete HTTP/1.1 request with a fixed 200, keep-alive, no routing."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(_NOOP_RESPONSE)


async def serve_noop(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(NoopProtocol, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("--body-file", help="the JSON body to POST")
    parser.add_argument("--concurrency", "-c", type=int, default=1)
    parser.add_argument("--requests", "-n", type=int, default=0, help="stop after this many (0: no count bound)")
    parser.add_argument("--duration", "-d", type=float, default=0.0, help="stop after this many seconds (0: none)")
    parser.add_argument("--warmup", type=int, default=0, help="requests sent first and not recorded")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one request may take")
    parser.add_argument("--out", help="write the results as JSON here (default: stdout)")
    parser.add_argument("--serve-noop", type=int, metavar="PORT", help="run the fixed-answer server instead")
    args = parser.parse_args(argv)
    use_uvloop()
    if args.serve_noop:
        asyncio.run(serve_noop(args.serve_noop))
        return
    if not args.url or not args.body_file or (args.requests <= 0 and args.duration <= 0):
        parser.error("--url, --body-file and --requests or --duration are required")
    with open(args.body_file, "rb") as f:
        body = f.read()
    results = asyncio.run(run(args.url, body, args.concurrency, args.requests, args.duration, args.warmup, args.timeout))
    text = json.dumps(asdict(results))
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text + "\n")
    counts = collections.Counter(results.statuses)
    print(f"loadgen: {results.completed} responses {dict(counts)} failures {results.failure_kinds} in {results.wall_s:.2f}s, "
          f"cpu {results.cpu_s:.2f}s", file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
