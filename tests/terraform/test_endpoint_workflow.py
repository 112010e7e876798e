"""The Terraform workflow on `hubserve_endpoint`, with Terraform core, against a real server.

init, validate, plan (1 to add), apply, a re-plan with no changes, an in-place change, drift made
with the CLI, a rename (replace), import, an out-of-band delete (re-created) and destroy; every
plan with ``-detailed-exitcode`` (0: nothing to do, 2: changes) and every command ``-input=false``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import tiny_models as builders

from tests.integration.conftest import RunningServer, wait_for_state
from tests.terraform.conftest import Terraform

SECRET = "s3cr3t-value-7d1"
PLAN = ("plan", "-input=false", "-detailed-exitcode", "-no-color")
APPLY = ("apply", "-input=false", "-auto-approve", "-no-color")


def config(
    server: RunningServer,
    model: Path,
    *,
    name: str = "tf-sst2",
    memory: int = 2048,
    env: str = "",
    state_only: bool = True,
) -> str:
    """``state_only``: with secrets and timeouts, which an import cannot read back from the server."""
    secret_line = f'  secrets = {{ API_KEY = "{SECRET}" }}\n' if state_only else ""
    timeouts = '  timeouts {\n    create = "5m"\n  }\n' if state_only else ""
    return f"""
terraform {{
  required_providers {{
    hubserve = {{ source = "hubserve/hubserve" }}
  }}
}}

provider "hubserve" {{
  url   = "{server.url}"
  token = "{server.token}"
}}

resource "hubserve_endpoint" "sst2" {{
  name = "{name}"
  model {{
    source = "{model}"
    task   = "text-classification"
  }}
  serverless {{
    memory_mb       = {memory}
    max_concurrency = 4
  }}
  env = {{ GREETING = "hello"{env} }}
{secret_line}{timeouts}}}

output "url" {{
  value = hubserve_endpoint.sst2.url
}}
"""


def hubserve(server: RunningServer, *args: str) -> str:
    command = [sys.executable, "-m", "hubserve", "--url", server.url, "--token", server.token, *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tf-models") / "sst2"
    builders.build_text_classification(folder)
    return folder


def test_the_whole_workflow(terraform: Terraform, tf_server: RunningServer, tf_api: httpx.Client, model: Path) -> None:
    terraform.write(config(tf_server, model))
    terraform.expect(0, "init", "-input=false", "-no-color")
    assert "Success! The configuration is valid" in terraform.expect(0, "validate", "-no-color")

    planned = terraform.expect(2, *PLAN)
    assert "1 to add, 0 to change, 0 to destroy" in planned
    assert SECRET not in planned and "(sensitive value)" in planned

    applied = terraform.expect(0, *APPLY)
    assert "1 added, 0 changed, 0 destroyed" in applied and SECRET not in applied
    live = tf_api.get("/v1/endpoints/tf-sst2").json()
    assert live["state"] in ("running", "scaledToZero")
    assert (
        live["compute"]["memory_mb"] == 2048 and live["env"] == {"GREETING": "hello"} and "API_KEY" in live["secrets"]
    )
    assert f'url = "{tf_server.url}/endpoints/tf-sst2"' in applied
    created_at = live["created_at"]
    assert "No changes." in terraform.expect(0, *PLAN)

    # An in-place change: hubserve's rolling update, not a replacement.
    terraform.write(config(tf_server, model, memory=3072, env=', MODE = "fast"'))
    planned = terraform.expect(2, *PLAN)
    assert "0 to add, 1 to change, 0 to destroy" in planned and "must be replaced" not in planned
    assert "2048 -> 3072" in planned
    terraform.expect(0, *APPLY)
    live = tf_api.get("/v1/endpoints/tf-sst2").json()
    assert live["compute"]["memory_mb"] == 3072 and live["env"]["MODE"] == "fast"
    assert live["created_at"] == created_at and live["state"] in ("running", "scaledToZero")
    assert "No changes." in terraform.expect(0, *PLAN)

    # Drift: a change made with the CLI shows in the next plan, and apply puts the configuration back.
    hubserve(tf_server, "endpoint", "update", "tf-sst2", "--memory-mb", "4096", "--wait")
    drifted = terraform.expect(2, *PLAN)
    assert "4096 -> 3072" in drifted and "1 to change" in drifted
    terraform.expect(0, *APPLY)
    assert tf_api.get("/v1/endpoints/tf-sst2").json()["compute"]["memory_mb"] == 3072

    # A new name replaces the endpoint.
    terraform.write(config(tf_server, model, name="tf-sst2-b", memory=3072, env=', MODE = "fast"'))
    planned = terraform.expect(2, *PLAN)
    assert "must be replaced" in planned and "1 to add, 0 to change, 1 to destroy" in planned
    terraform.expect(0, *APPLY)
    assert tf_api.get("/v1/endpoints/tf-sst2").status_code == 404
    assert tf_api.get("/v1/endpoints/tf-sst2-b").json()["state"] in ("running", "scaledToZero")

    # Import: forget the endpoint, import it by name, and the plan is empty. Secret values and timeouts cannot
    # be read back from the server, so the configuration drops them first (with them, the first plan after an
    # import shows them as a change, once); dropping the secret removes it from the endpoint.
    terraform.write(config(tf_server, model, name="tf-sst2-b", memory=3072, env=', MODE = "fast"', state_only=False))
    terraform.expect(0, *APPLY)
    assert tf_api.get("/v1/endpoints/tf-sst2-b").json()["secrets"] == {}
    terraform.expect(0, "state", "rm", "hubserve_endpoint.sst2")
    terraform.expect(0, "import", "-input=false", "-no-color", "hubserve_endpoint.sst2", "tf-sst2-b")
    assert "No changes." in terraform.expect(0, *PLAN)

    # Deleted outside Terraform: planned for re-creation.
    hubserve(tf_server, "endpoint", "delete", "tf-sst2-b", "--yes")
    wait_for_state(tf_api, "tf-sst2-b", {"gone"}, timeout=60)
    planned = terraform.expect(2, *PLAN)
    assert "1 to add, 0 to change, 0 to destroy" in planned
    terraform.expect(0, *APPLY)
    assert tf_api.get("/v1/endpoints/tf-sst2-b").json()["state"] in ("running", "scaledToZero")

    destroyed = terraform.expect(0, "destroy", "-input=false", "-auto-approve", "-no-color")
    assert "1 destroyed" in destroyed
    assert tf_api.get("/v1/endpoints/tf-sst2-b").status_code == 404
