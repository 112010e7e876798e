"""`hubserve_model_version`, `hubserve_token` and the data sources, through Terraform against a real server.

A registered version deploys an endpoint (its `uri` as the model source), a token scoped to that
endpoint invokes it, approval changes in place, a token imports with an empty plan, and destroy
revokes the token and deletes the version after the endpoint that uses it.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import tiny_models as builders

from tests.integration.conftest import RunningServer
from tests.terraform.conftest import Terraform
from tests.terraform.test_endpoint_workflow import APPLY, PLAN


def config(server: RunningServer, model: Path, approval: str | None = None) -> str:
    approval_line = f'  approval_status = "{approval}"\n' if approval else ""
    return f"""
terraform {{
  required_providers {{
    hubserve = {{ source = "hubserve/hubserve" }}
  }}
}}

provider "hubserve" {{
  url = "{server.url}"
}}

resource "hubserve_model_version" "v1" {{
  group       = "tf-group"
  source      = "{model}"
  description = "the first one"
  metrics     = jsonencode({{ accuracy = 0.91 }})
{approval_line}}}

resource "hubserve_endpoint" "from_registry" {{
  name = "tf-reg"
  model {{
    source = hubserve_model_version.v1.uri
  }}
}}

resource "hubserve_token" "invoker" {{
  name      = "tf-invoker"
  scopes    = ["invoke"]
  endpoints = [hubserve_endpoint.from_registry.name]
}}

data "hubserve_endpoints" "all" {{
  depends_on = [hubserve_endpoint.from_registry]
}}

data "hubserve_endpoint" "reg" {{
  name = hubserve_endpoint.from_registry.name
}}

output "token" {{
  value     = hubserve_token.invoker.token
  sensitive = true
}}

output "names" {{
  value = data.hubserve_endpoints.all.names
}}

output "reg" {{
  value = "${{data.hubserve_endpoint.reg.task}} ${{data.hubserve_endpoint.reg.model_source}}"
}}
"""


def test_registry_tokens_and_data_sources(
    terraform: Terraform, tf_server: RunningServer, tf_api: httpx.Client, tmp_path: Path
) -> None:
    model = tmp_path / "models" / "sst2"
    builders.build_text_classification(model)
    terraform.env["HUBSERVE_TOKEN"] = tf_server.token  # the provider block names only the url
    terraform.write(config(tf_server, model))
    terraform.expect(0, "init", "-input=false", "-no-color")
    assert "3 to add" in terraform.expect(2, *PLAN)
    applied = terraform.expect(0, *APPLY)
    assert "3 added, 0 changed, 0 destroyed" in applied

    outputs = json.loads(terraform.expect(0, "output", "-json", "-no-color"))
    secret = outputs["token"]["value"]
    assert outputs["token"]["sensitive"] and secret not in applied
    assert "tf-reg" in outputs["names"]["value"]
    assert outputs["reg"]["value"] == "text-classification registry://tf-group/1"
    version = tf_api.get("/v1/models/tf-group/versions/1").json()
    assert version["approval_status"] == "PendingManualApproval" and version["metrics"] == {"accuracy": 0.91}
    answer = httpx.post(
        f"{tf_server.url}/endpoints/tf-reg",
        json={"inputs": "great"},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert "No changes." in terraform.expect(0, *PLAN)

    # Approval changes in place (the version is not registered again).
    terraform.write(config(tf_server, model, approval="Approved"))
    planned = terraform.expect(2, *PLAN)
    assert "0 to add, 1 to change, 0 to destroy" in planned
    terraform.expect(0, *APPLY)
    assert tf_api.get("/v1/models/tf-group/versions/1").json()["approval_status"] == "Approved"
    assert "No changes." in terraform.expect(0, *PLAN)

    # A token imports by id with an empty plan (its secret stays unknown to the new state).
    token_id = json.loads(terraform.expect(0, "show", "-json", "-no-color"))["values"]["root_module"]["resources"]
    token_id = next(item["values"]["id"] for item in token_id if item["type"] == "hubserve_token")
    terraform.expect(0, "state", "rm", "hubserve_token.invoker")
    terraform.expect(0, "import", "-input=false", "-no-color", "hubserve_token.invoker", token_id)
    assert "No changes." in terraform.expect(0, *PLAN)

    assert "3 destroyed" in terraform.expect(0, "destroy", "-input=false", "-auto-approve", "-no-color")
    refused = httpx.post(
        f"{tf_server.url}/endpoints/tf-reg",
        json={"inputs": "x"},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )
    assert refused.status_code in (401, 403, 404)
    assert tf_api.get("/v1/models/tf-group/versions/1").status_code == 404
    assert tf_api.get(f"/v1/tokens/{token_id}").json().get("revoked_at")
