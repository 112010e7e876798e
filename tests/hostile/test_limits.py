"""Bodies and heads bounded in size and time, through a real server (api/limits.py, api/http_protocol.py).

Each test sends what a hostile client would (a 300 MB body, a trickle, a slow or huge head) and checks
the refusal, its dialect, the server's memory, and that the next ordinary request still succeeds.
"""

from __future__ import annotations

import json
import threading
import time

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.hostile import wire
from tests.hostile.conftest import BODY_TIMEOUT_S, HEADER_TIMEOUT_S, rss_kib
from tests.integration.conftest import RunningServer

HUGE = 300 * 1024 * 1024


def _healthy(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
    assert httpx.get(f"{server.url}/v1/endpoints", headers=server.headers(), timeout=5).status_code == 200


def _send_huge(server: RunningServer, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    sock = wire.connect(server.url)
    try:
        sock.sendall(
            wire.head("POST", path, {"Content-Length": str(HUGE), "Content-Type": "application/json", **headers})
        )
        wire.push(sock, HUGE)
        return wire.read_response(sock)
    finally:
        sock.close()


def test_a_300_mb_body_without_a_token_is_refused_before_it_is_read(hostile_server: RunningServer) -> None:
    before = rss_kib(hostile_server.process.pid)
    status, raw = _send_huge(hostile_server, "/v1/endpoints", {})
    assert status == 401, raw[:300]
    assert rss_kib(hostile_server.process.pid) - before < 20 * 1024
    _healthy(hostile_server)


def test_a_300_mb_body_with_a_token_is_refused_by_its_size(hostile_server: RunningServer) -> None:
    before = rss_kib(hostile_server.process.pid)
    status, raw = _send_huge(hostile_server, "/v1/endpoints", {"Authorization": f"Bearer {hostile_server.token}"})
    assert status == 413, raw[:300]
    assert b'"PayloadTooLarge"' in raw and b"1 MB" in raw
    assert rss_kib(hostile_server.process.pid) - before < 20 * 1024
    _healthy(hostile_server)


def _signed_headers(server: RunningServer) -> dict[str, str]:
    """SigV4 headers as boto3 signs a small ListEndpoints; the huge body that follows is not what was signed."""
    request = AWSRequest(method="POST", url=f"{server.url}/", data=b"{}", headers={
        "X-Amz-Target": "SageMaker.ListEndpoints", "Content-Type": "application/x-amz-json-1.1"})  # fmt: skip
    SigV4Auth(Credentials("hostile-key", server.token), "sagemaker", "us-east-1").add_auth(request)
    return {name: value for name, value in request.headers.items() if name.lower() != "content-length"}


def test_a_300_mb_body_to_the_sagemaker_control_plane_gets_its_error(hostile_server: RunningServer) -> None:
    before = rss_kib(hostile_server.process.pid)
    unsigned, raw_unsigned = _send_huge(hostile_server, "/", {"X-Amz-Target": "SageMaker.ListEndpoints"})
    signed, raw = _send_huge(hostile_server, "/", _signed_headers(hostile_server))
    assert unsigned in (401, 413) and b'"__type"' in raw_unsigned, raw_unsigned[:300]
    assert signed == 413, raw[:300]
    body = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert body["__type"] == "RequestEntityTooLarge" and "1 MB" in body["message"]
    assert rss_kib(hostile_server.process.pid) - before < 20 * 1024
    _healthy(hostile_server)


def test_a_chunked_body_without_length_is_cut_off_at_the_limit(hostile_server: RunningServer) -> None:
    def chunks():
        for _ in range(48):
            yield b"[" * 65536

    response = httpx.post(
        f"{hostile_server.url}/v1/endpoints", content=chunks(), headers=hostile_server.headers(), timeout=30
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["type"] == "PayloadTooLarge"
    _healthy(hostile_server)


def test_a_trickled_body_is_dropped_with_408(hostile_server: RunningServer) -> None:
    sock = wire.connect(hostile_server.url, timeout=30)
    started = time.monotonic()
    try:
        headers = {"Content-Length": str(512 * 1024), "Content-Type": "application/json",
                   "Authorization": f"Bearer {hostile_server.token}"}  # fmt: skip
        sock.sendall(wire.head("POST", "/v1/endpoints", headers))
        sock.settimeout(0.5)
        raw = b""
        while time.monotonic() - started < BODY_TIMEOUT_S + 10:
            try:
                sock.sendall(b" " * 1024)  # 1 KB per 0.5 s: 2 KB/s, under the minimum rate
            except OSError:
                break
            try:
                raw += sock.recv(65536)
                if raw:
                    break
            except TimeoutError:
                pass
        _, rest = wire.read_response(sock, timeout=2)
        raw += rest
    finally:
        sock.close()
    assert raw.startswith(b"HTTP/1.1 408"), raw[:300]
    assert b"too slowly" in raw
    assert time.monotonic() - started < BODY_TIMEOUT_S + 6
    _healthy(hostile_server)


def test_slow_heads_are_dropped_and_do_not_hold_the_server(hostile_server: RunningServer) -> None:
    socks = [wire.connect(hostile_server.url, timeout=15) for _ in range(100)]
    started = time.monotonic()
    try:
        for sock in socks:
            sock.sendall(b"GET /v1/endpoints HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # and never the rest
        _healthy(hostile_server)  # the half-sent heads hold nothing
        status, raw = wire.read_response(socks[0], timeout=HEADER_TIMEOUT_S + 5)
        assert status == 408, raw[:300]
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 4
    finally:
        for sock in socks:
            sock.close()
    _healthy(hostile_server)


def test_a_silent_connection_is_closed(hostile_server: RunningServer) -> None:
    sock = wire.connect(hostile_server.url, timeout=HEADER_TIMEOUT_S + 5)
    try:
        status, raw = wire.read_response(sock, timeout=HEADER_TIMEOUT_S + 4)
    finally:
        sock.close()
    assert status in (0, 408) and (status == 408 or raw == b"")


def test_oversized_headers_get_431(hostile_server: RunningServer) -> None:
    response = httpx.get(f"{hostile_server.url}/health", headers={"X-Big": "a" * 100_000}, timeout=10)
    assert response.status_code == 431
    _healthy(hostile_server)


def test_a_client_that_leaves_mid_body_leaves_nothing_behind(hostile_server: RunningServer) -> None:
    for _ in range(20):
        sock = wire.connect(hostile_server.url)
        headers = {"Content-Length": "100000", "Authorization": f"Bearer {hostile_server.token}",
                   "Content-Type": "application/json"}  # fmt: skip
        sock.sendall(wire.head("POST", "/v1/endpoints", headers) + b'{"name": "gone')
        sock.close()
    _healthy(hostile_server)


def test_many_slow_bodies_at_once_do_not_stop_other_requests(hostile_server: RunningServer) -> None:
    socks = []
    for _ in range(30):
        sock = wire.connect(hostile_server.url, timeout=15)
        headers = {"Content-Length": "100000", "Authorization": f"Bearer {hostile_server.token}"}
        sock.sendall(wire.head("POST", "/v1/endpoints", headers) + b"{")
        socks.append(sock)
    try:
        _healthy(hostile_server)
        waiter = threading.Thread(target=lambda: wire.read_response(socks[-1], timeout=BODY_TIMEOUT_S + 5))
        waiter.start()
        waiter.join(BODY_TIMEOUT_S + 6)
        status, raw = wire.read_response(socks[0], timeout=BODY_TIMEOUT_S + 5)
        assert status in (0, 408), raw[:200]
    finally:
        for sock in socks:
            sock.close()
    _healthy(hostile_server)
