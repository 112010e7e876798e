"""Endpoint visibility (spec ``access``) as Inference Endpoints names it, on a real server with real endpoints."""

from __future__ import annotations

import httpx
import pytest

from hubserve.api.auth import Authentication
from hubserve.settings import Settings
from tests.auth.conftest import MakeToken, outside_address
from tests.integration.conftest import RunningServer

BODY = {"inputs": "I love this"}


def _invoke(url: str, name: str, token: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{url}/endpoints/{name}", json=BODY, headers=headers, timeout=120)


def test_a_public_endpoint_answers_without_a_token(auth_server: RunningServer, endpoints: dict[str, str]) -> None:
    assert _invoke(auth_server.url, endpoints["public"]).status_code == 200
    stream = httpx.post(f"{auth_server.url}/endpoints/{endpoints['public']}/invocations", json=BODY, timeout=120)
    assert stream.status_code == 200
    listing = httpx.get(f"{auth_server.url}/endpoints/{endpoints['public']}/async-invocations", timeout=30)
    assert listing.status_code == 401  # the list of every inference is not for anyone, even on a public endpoint


def test_a_protected_endpoint_needs_an_invoke_token(
    auth_server: RunningServer, endpoints: dict[str, str], make_token: MakeToken
) -> None:
    name = endpoints["protected"]
    refused = _invoke(auth_server.url, name)
    assert refused.status_code == 401 and isinstance(refused.json()["error"], str)
    assert _invoke(auth_server.url, name, make_token("read", "deploy")["token"]).status_code == 403
    assert _invoke(auth_server.url, name, make_token("invoke")["token"]).status_code == 200


def test_an_invoke_token_limited_to_one_endpoint_is_refused_on_another(
    auth_server: RunningServer, endpoints: dict[str, str], make_token: MakeToken
) -> None:
    limited = make_token("invoke", endpoints=[endpoints["private"]])["token"]
    assert _invoke(auth_server.url, endpoints["private"], limited).status_code == 200
    refused = _invoke(auth_server.url, endpoints["protected"], limited)
    assert refused.status_code == 403 and "vis-protected" in refused.json()["error"]
    other = httpx.get(f"{auth_server.url}/endpoints/{endpoints['protected']}/async-invocations",
                      headers={"authorization": f"Bearer {limited}"}, timeout=30)  # fmt: skip
    assert other.status_code == 403


def test_a_private_endpoint_answers_loopback_and_refuses_other_networks(
    auth_server: RunningServer, endpoints: dict[str, str], make_token: MakeToken
) -> None:
    token = make_token("invoke")["token"]
    name = endpoints["private"]
    assert _invoke(auth_server.url, name).status_code == 401
    assert _invoke(auth_server.url, name, token).status_code == 200  # from 127.0.0.1
    address = outside_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to send from")
    port = auth_server.url.rsplit(":", 1)[1]
    outside = f"http://{address}:{port}"
    refused = _invoke(outside, name, token)
    assert refused.status_code == 403 and "private" in refused.json()["error"]
    assert _invoke(outside, endpoints["protected"], token).status_code == 200  # protected: any network
    assert _invoke(outside, endpoints["public"]).status_code == 200


def test_the_private_network_allow_list_admits_its_addresses() -> None:
    settings = Settings(token="t", private_networks=["10.1.0.0/16", "fd00::/8"])
    layer = Authentication(lambda *_: None, settings)  # type: ignore[arg-type]
    allowed = [("10.1.2.3", 5), ("127.0.0.2", 5), ("::1", 5), ("fd00::2", 5)]
    refused = [("10.2.0.1", 5), ("192.0.2.2", 5), ("2001:db8::1", 5)]
    assert all(layer._from_private_network({"client": client}) for client in allowed)
    assert not any(layer._from_private_network({"client": client}) for client in refused)
