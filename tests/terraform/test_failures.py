"""Apply fails with the server's own words: a spec the server refuses, and an endpoint that fails to deploy."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.integration.conftest import RunningServer
from tests.terraform.conftest import Terraform
from tests.terraform.test_endpoint_workflow import APPLY, PLAN


def config(server: RunningServer, name: str, source: Path) -> str:
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

resource "hubserve_endpoint" "bad" {{
  name = "{name}"
  model {{
    source = "{source}"
    task   = "text-classification"
  }}
}}
"""


def test_a_refused_spec_and_a_failed_deployment_fail_the_apply_with_the_reason(
    terraform: Terraform, tf_server: RunningServer, tf_api: httpx.Client, tmp_path: Path
) -> None:
    terraform.write(config(tf_server, "tf-missing", tmp_path / "no-such-model"))
    terraform.expect(0, "init", "-input=false", "-no-color")
    refused = terraform.run(*APPLY)
    assert refused.returncode == 1
    assert "Could not create endpoint tf-missing" in refused.stderr and "does not exist" in refused.stderr, (
        refused.stderr
    )

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "bert", "architectures": ["BertForSequenceClassification"]}')
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    terraform.write(config(tf_server, "tf-broken", broken))
    failed = terraform.run(*APPLY)
    assert failed.returncode == 1
    assert "Endpoint tf-broken failed" in failed.stderr, failed.stderr
    reason = tf_api.get("/v1/endpoints/tf-broken").json()["reason"]
    assert reason and reason.split(":")[0] in " ".join(failed.stderr.split())
    # The failed endpoint is in the state, tainted: the next plan replaces it.
    planned = terraform.expect(2, *PLAN)
    assert "tainted" in planned and "1 to add, 0 to change, 1 to destroy" in planned
    terraform.expect(0, "destroy", "-input=false", "-auto-approve", "-no-color")
