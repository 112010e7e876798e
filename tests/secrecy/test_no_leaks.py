"""Neither the admin token nor an endpoint secret shows up anywhere the server writes or answers."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.secrecy.conftest import ENDPOINT, SECRET_VALUE, TOKEN, Started


def _exercise(server: Started, admin: httpx.Client) -> list[str]:
    """Succeeding and failing calls of several routes and dialects; the bodies they answered."""
    wrong = {"Authorization": f"Bearer {TOKEN}x"}
    bodies = []
    calls = [
        admin.get(f"/v1/endpoints/{ENDPOINT}"),
        admin.get("/v1/endpoints"),
        admin.get(f"/v2/endpoint/ns/{ENDPOINT}"),
        admin.get("/v1/endpoints/no-such-endpoint"),
        admin.post("/v1/endpoints", content=b"{not json", headers={"Content-Type": "application/json"}),
        admin.post("/v1/endpoints", json={"name": "Bad Name", "secrets": {"K": SECRET_VALUE}}),
        admin.post(f"/endpoints/{ENDPOINT}", json={"inputs": "boom"}),  # the handler raises
        admin.post(f"/endpoints/{ENDPOINT}", json={"inputs": "PLAIN_SETTING"}),
        admin.get(f"/v1/endpoints/{ENDPOINT}/logs"),
        admin.get(f"/v1/endpoints/{ENDPOINT}/events"),
        admin.get("/metrics"),
        httpx.get(f"{server.url}/v1/endpoints", headers=wrong),
        httpx.post(f"{server.url}/v2/endpoint/ns", headers=wrong, json={}),
        httpx.get(f"{server.url}/"),
        httpx.get(f"{server.url}/console/config"),
    ]
    page = calls[-2].text
    for script in (part.split('"', 1)[0] for part in page.split('src="')[1:]):
        calls.append(httpx.get(f"{server.url}/{script.lstrip('/')}"))
    for response in calls:
        bodies.append(f"{response.request.method} {response.request.url.path} -> {response.status_code}\n"
                      f"{dict(response.headers)}\n{response.text}")  # fmt: skip
    return bodies


def test_no_token_or_secret_in_answers_logs_or_metrics(secret_server: Started, admin: httpx.Client,
                                                       secret_endpoint: dict) -> None:  # fmt: skip
    answers = _exercise(secret_server, admin)
    assert any(" -> 200" in answer and "/metrics" in answer for answer in answers)
    assert any("<html" in answer.lower() for answer in answers)  # the console page was fetched
    for secret in (TOKEN, SECRET_VALUE):
        leaked = [answer.split("\n", 1)[0] for answer in answers if secret in answer]
        assert not leaked, f"{secret!r} answered by {leaked}"
        assert secret not in secret_server.log(), "in the server's own output"
        written = [str(path) for path in Path(secret_server.home, "logs").rglob("*")
                   if path.is_file() and secret in path.read_text(errors="replace")]  # fmt: skip
        assert not written, f"{secret!r} written to {written}"
