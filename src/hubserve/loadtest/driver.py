"""The load generator itself; runs in its own process (``python -m hubserve.loadtest``).

Same approach as ``benchmarks/loadgen.py``: keep-alive connections on raw asyncio streams
(uvloop when installed), one pre-encoded POST, a minimal response parser, no HTTP client
library on the hot path, so the CPU goes to the server being measured, not here.

Two ways to send:
- closed loop (default, as ``ab -c``): C connections, each sends, waits for the whole answer,
  sends again; C is the concurrency the server sees;
- open loop (``rate`` > 0): arrivals at a fixed R per second whatever the server does, on at most
  C connections; an arrival that finds every connection busy waits for one, and its latency counts
  from when it was due, so a slow server cannot hide its queue (no coordinated omission).
Either way no request starts after the count or the duration runs out; those in flight are
waited for (each at most ``timeout`` seconds).

Per response it records the latency (first byte written, or the due time, to last byte read),
the status, hubserve's ``x-model-latency-ms`` / ``x-overhead-latency-ms`` and ``x-cold-start``;
of the first failure (a non-2xx answer, or none at all) it keeps what it said, so a run that fails
tells why, not only how often.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MODEL_HEADER = b"x-model-latency-ms"
OVERHEAD_HEADER = b"x-overhead-latency-ms"
COLD_HEADER = b"x-cold-start"
_KEPT_BODY = 4096  # of the first failed answer's body
_TRANSPORT_ERRORS = (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError)


HEADERS_ENV = "HUBSERVE_LOADTEST_HEADERS"  # the parent's headers as JSON: argv would show a token in `ps`


@dataclass
class Plan:
    """What to send, how hard, and for how long."""

    url: str
    body: bytes
    concurrency: int = 1
    requests: int = 0  # 0: no count bound
    duration: float = 0.0  # seconds; 0: no time bound
    rate: float = 0.0  # arrivals per second; 0: closed loop
    timeout: float = 60.0  # seconds one request may take
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Results:
    """Raw measurements of one run; ``stats.summarise`` turns them into the report."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    statuses: list[int] = field(default_factory=list)  # per response, aligned with latencies_ms
    latencies_ms: list[float] = field(default_factory=list)
    model_ms: list[float] = field(default_factory=list)  # responses that carried the header
    overhead_ms: list[float] = field(default_factory=list)
    cold_starts: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # no HTTP answer: exception name -> count
    first_failure_status: int = 0  # of the first failure; 0: it had no HTTP answer (or none failed)
    first_failure: str = ""  # its body (the start of it), or the exception when there was no answer

    def record(self, status: int, latency_ms: float, headers: dict[bytes, bytes], body: bytes = b"") -> None:
        if not 200 <= status < 300 and not self.first_failure:
            self.first_failure_status = status
            self.first_failure = body[:_KEPT_BODY].decode("utf-8", errors="replace") or f"HTTP {status}"
        self.statuses.append(status)
        self.latencies_ms.append(latency_ms)
        if MODEL_HEADER in headers:
            self.model_ms.append(float(headers[MODEL_HEADER]))
        if OVERHEAD_HEADER in headers:
            self.overhead_ms.append(float(headers[OVERHEAD_HEADER]))
        if headers.get(COLD_HEADER, b"").lower() == b"true":
            self.cold_starts += 1

    def fail(self, exc: BaseException) -> None:
        kind = type(exc).__name__
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if not self.first_failure:
            self.first_failure = f"{kind}: {exc}" if str(exc) else kind


class Budget:
    """Hands out permission to start requests until the count or the deadline runs out."""

    def __init__(self, requests: int, duration: float) -> None:
        self.left = requests if requests > 0 else -1
        self.deadline = time.perf_counter() + duration if duration > 0 else float("inf")

    def take(self) -> bool:
        if self.left == 0 or time.perf_counter() >= self.deadline:
            return False
        self.left -= 1
        return True


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects when the server closes it."""

    def __init__(self, plan: Plan) -> None:
        parts = urlsplit(plan.url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {plan.url}")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.request = build_request(plan, parts.path or "/", parts.query)
        self.timeout = plan.timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self) -> tuple[int, dict[bytes, bytes], bytes]:
        """Send the request once; the status, headers and body of its response."""
        return await asyncio.wait_for(self._exchange(), self.timeout)

    async def _exchange(self) -> tuple[int, dict[bytes, bytes], bytes]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.ssl, limit=1 << 22, server_hostname=self.host if self.ssl else None
            )
        assert self.reader is not None
        self.writer.write(self.request)
        status, headers, keep_alive, body = await read_answer(self.reader)
        if not keep_alive:
            self.close()
        return status, headers, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def build_request(plan: Plan, path: str, query: str) -> bytes:
    target = path + (f"?{query}" if query else "")
    host = urlsplit(plan.url).netloc
    headers = {"Host": host, "Content-Type": "application/json", "Accept": "application/json",
               **plan.headers, "Content-Length": str(len(plan.body))}  # fmt: skip
    head = f"POST {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + plan.body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bool]:
    """Status, lower-cased headers and keep-alive of one response; its body is read and dropped."""
    status, headers, keep_alive, _ = await read_answer(reader)
    return status, headers, keep_alive


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bool, bytes]:
    """Status, lower-cased headers, keep-alive and body of one response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            chunks.append((await reader.readexactly(size + 2))[:size])  # the chunk and its CRLF
            if size == 0:
                break
        body = b"".join(chunks)
    else:
        body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return status, headers, headers.get(b"connection", b"").lower() != b"close", body


async def _one(connection: Connection, results: Results, started: float) -> None:
    try:
        status, headers, body = await connection.send()
    except _TRANSPORT_ERRORS as exc:
        connection.close()
        results.fail(exc)
        await asyncio.sleep(0.01)  # a refused connection must not turn into a busy loop
        return
    results.record(status, (time.perf_counter() - started) * 1000.0, headers, body)


async def _closed_loop(connection: Connection, budget: Budget, results: Results) -> None:
    while budget.take():
        await _one(connection, results, time.perf_counter())


async def _open_loop(connections: list[Connection], budget: Budget, rate: float, results: Results) -> None:
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for connection in connections:
        idle.put_nowait(connection)
    tasks: set[asyncio.Task[None]] = set()

    async def fire(connection: Connection, due: float) -> None:
        try:
            await _one(connection, results, due)
        finally:
            idle.put_nowait(connection)

    start = time.perf_counter()
    sent = 0
    while True:
        due = start + sent / rate
        if due >= budget.deadline:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if not budget.take():
            break
        connection = await idle.get()
        task = asyncio.create_task(fire(connection, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += 1
    if tasks:
        await asyncio.gather(*tasks)


async def run(plan: Plan) -> Results:
    """Drive ``plan`` to its end and return what was measured."""
    if plan.requests <= 0 and plan.duration <= 0:
        raise ValueError("a run needs a request count or a duration")
    connections = [Connection(plan) for _ in range(max(1, plan.concurrency))]
    results = Results()
    budget = Budget(plan.requests, plan.duration)
    cpu_started, started = time.process_time(), time.perf_counter()
    if plan.rate > 0:
        await _open_loop(connections, budget, plan.rate, results)
    else:
        await asyncio.gather(*(_closed_loop(c, budget, results) for c in connections))
    results.wall_s = time.perf_counter() - started
    results.cpu_s = time.process_time() - cpu_started
    for connection in connections:
        connection.close()
    return results


def use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
