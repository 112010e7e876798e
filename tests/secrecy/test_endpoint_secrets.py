"""Endpoint secrets reach the replicas as environment variables and never come back out."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from tests.integration.conftest import wait_for_state
from tests.secrecy.conftest import ENDPOINT, SECRET_NAME, SECRET_VALUE, TOKEN, Started, invoke_secret


def test_the_replica_gets_the_secret_as_an_environment_variable(admin: httpx.Client, secret_endpoint: dict) -> None:
    assert invoke_secret(admin) == SECRET_VALUE


def test_describe_and_list_name_secrets_without_their_values(admin: httpx.Client, secret_endpoint: dict) -> None:
    for response in (admin.get(f"/v1/endpoints/{ENDPOINT}"), admin.get("/v1/endpoints")):
        assert response.status_code == 200
        assert SECRET_VALUE not in response.text
    assert SECRET_VALUE not in json.dumps(secret_endpoint)  # the create answer too
    described = admin.get(f"/v1/endpoints/{ENDPOINT}").json()
    assert described["secrets"] == {SECRET_NAME: "***"}
    assert described["env"] == {"PLAIN_SETTING": "visible"}  # plain env stays visible, and holds no secret


def test_the_v2_dialect_names_secrets_without_their_values(admin: httpx.Client, secret_endpoint: dict) -> None:
    one, every = admin.get(f"/v2/endpoint/ns/{ENDPOINT}"), admin.get("/v2/endpoint/ns")
    assert one.status_code == every.status_code == 200
    assert SECRET_VALUE not in one.text and SECRET_VALUE not in every.text
    model = one.json()["model"]
    assert model["secrets"] == {SECRET_NAME: "***"} and SECRET_NAME not in model["env"]


def test_updates_that_do_not_resend_the_secret_keep_it(admin: httpx.Client, secret_endpoint: dict) -> None:
    patched = admin.patch(f"/v1/endpoints/{ENDPOINT}", json={"env": {"PLAIN_SETTING": "changed"}})
    assert patched.status_code == 200, patched.text
    assert wait_for_state(admin, ENDPOINT, {"running", "failed"})["state"] == "running"
    assert invoke_secret(admin) == SECRET_VALUE

    # PUT back what describe shows ("***"): the stored value stays, not the placeholder.
    shown = admin.get(f"/v1/endpoints/{ENDPOINT}").json()
    spec = {key: shown[key] for key in ("name", "model", "compute", "env", "secrets", "custom_code")}
    spec["env"] = {"PLAIN_SETTING": "again"}
    put = admin.put(f"/v1/endpoints/{ENDPOINT}", json=spec)
    assert put.status_code == 200, put.text
    assert wait_for_state(admin, ENDPOINT, {"running", "failed"})["state"] == "running"
    assert invoke_secret(admin) == SECRET_VALUE

    # A whole spec as the SDK dumps it ("secrets": {}) is not a removal; PATCH null is.
    spec["secrets"] = {}
    assert admin.put(f"/v1/endpoints/{ENDPOINT}", json=spec).json()["secrets"] == {SECRET_NAME: "***"}

    # The /v2 dialect's update as huggingface_hub sends it (env only) keeps it as well.
    hf = admin.put(f"/v2/endpoint/ns/{ENDPOINT}", json={"model": {"env": {"PLAIN_SETTING": "hf"}}})
    assert hf.status_code == 200, hf.text
    assert hf.json()["model"]["secrets"] == {SECRET_NAME: "***"}
    assert wait_for_state(admin, ENDPOINT, {"running", "failed"})["state"] == "running"
    assert invoke_secret(admin) == SECRET_VALUE


def test_patch_null_removes_a_secret(admin: httpx.Client, secret_endpoint: dict) -> None:
    added = admin.patch(f"/v1/endpoints/{ENDPOINT}", json={"secrets": {"EXTRA_SECRET": "x-1"}})
    assert added.status_code == 200 and added.json()["secrets"] == {SECRET_NAME: "***", "EXTRA_SECRET": "***"}
    removed = admin.patch(f"/v1/endpoints/{ENDPOINT}", json={"secrets": {"EXTRA_SECRET": None}})
    assert removed.status_code == 200 and removed.json()["secrets"] == {SECRET_NAME: "***"}
    assert wait_for_state(admin, ENDPOINT, {"running", "failed"})["state"] == "running"


def test_the_placeholder_is_refused_where_nothing_is_stored(admin: httpx.Client, secret_endpoint: dict) -> None:
    shown = admin.get(f"/v1/endpoints/{ENDPOINT}").json()
    response = admin.patch(f"/v1/endpoints/{ENDPOINT}", json={"secrets": {"NEVER_SET": "***"}})
    assert response.status_code == 422, response.text  # a spec error, like every other
    assert "secrets.NEVER_SET" in response.json()["error"]["message"]
    created = admin.post("/v1/endpoints", json={"name": "placeholder", "model": shown["model"], "secrets": {"K": "***"}})
    assert created.status_code == 422 and "secrets.K" in created.text
    hf = admin.post("/v2/endpoint/ns", json={"name": "placeholder", "model": {"repository": shown["model"]["source"],
                                                                           "secrets": {"K": "***"}}})  # fmt: skip
    assert hf.status_code == 422 and "secrets.K" in hf.json()["error"]


def test_the_v2_create_keeps_secrets_apart_from_env(admin: httpx.Client, secret_endpoint: dict) -> None:
    source = admin.get(f"/v1/endpoints/{ENDPOINT}").json()["model"]["source"]
    body = {"name": "hf-secretive", "type": "protected",
            "model": {"repository": source, "task": "text-classification", "framework": "custom",
                      "env": {"PLAIN": "1"}, "secrets": {"SIDE_SECRET": SECRET_VALUE}}}  # fmt: skip
    created = admin.post("/v2/endpoint/ns", json=body)
    assert created.status_code == 200, created.text
    try:
        assert SECRET_VALUE not in created.text
        native = admin.get("/v1/endpoints/hf-secretive").json()
        assert native["secrets"] == {"SIDE_SECRET": "***"} and "SIDE_SECRET" not in native["env"]
        state = wait_for_state(admin, "hf-secretive", {"running", "failed"})
        assert state["state"] == "running", state["reason"]
        answer = admin.post("/endpoints/hf-secretive", json={"inputs": "SIDE_SECRET"})
        assert answer.status_code == 200 and answer.json()["value"] == SECRET_VALUE
    finally:
        admin.delete("/v1/endpoints/hf-secretive")


def test_export_names_secrets_without_their_values(secret_server: Started, secret_endpoint: dict) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hubserve", "--url", secret_server.url, "--token", TOKEN, "export", ENDPOINT],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert SECRET_NAME in result.stdout and "'***'" in result.stdout
    assert SECRET_VALUE not in result.stdout + result.stderr
