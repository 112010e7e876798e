"""`hubserve export --format terraform` writes a configuration that Terraform applies as a no-op.

Endpoints made with the CLI (one serverless with env, a secret and batching; one dedicated) are
exported; Terraform imports both, changes nothing on the server, and the next plan is empty.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import tiny_models as builders

from tests.integration.conftest import RunningServer, wait_for_state
from tests.terraform.conftest import Terraform
from tests.terraform.test_endpoint_workflow import APPLY, PLAN, hubserve


def test_an_export_applies_as_a_no_op(
    terraform: Terraform, tf_server: RunningServer, tf_api: httpx.Client, tmp_path: Path
) -> None:
    model = tmp_path / "models" / "sst2"
    builders.build_text_classification(model)
    serverless = {
        "name": "exp-serverless",
        "model": {"source": str(model)},
        "compute": {"type": "serverless", "memory_mb": 3072, "max_concurrency": 3},
        "batching": {"max_batch_size": 8},
        "env": {"GREETING": "${not a template}"},
        "secrets": {"API_KEY": "kept-on-the-server"},
    }
    dedicated = {
        "name": "exp-dedicated",
        "model": {"source": str(model), "task": "text-classification"},
        "compute": {"type": "dedicated", "instance": "cpu-small", "min_replicas": 1},
    }
    for spec in (serverless, dedicated):
        assert tf_api.post("/v1/endpoints", json=spec).status_code in (200, 201, 202)
    for name in ("exp-serverless", "exp-dedicated"):
        wait_for_state(tf_api, name, {"running", "scaledToZero"})
    before = {name: tf_api.get(f"/v1/endpoints/{name}").json() for name in ("exp-serverless", "exp-dedicated")}

    hubserve(
        tf_server,
        "export",
        "exp-serverless",
        "exp-dedicated",
        "--format",
        "terraform",
        "-o",
        str(terraform.workdir / "main.tf"),
    )
    written = (terraform.workdir / "main.tf").read_text()
    assert 'id = "exp-dedicated"' in written and "dedicated {" in written and "$${not a template}" in written
    assert "kept-on-the-server" not in written and tf_server.token not in written
    terraform.env["HUBSERVE_TOKEN"] = tf_server.token

    terraform.expect(0, "init", "-input=false", "-no-color")
    planned = terraform.expect(2, *PLAN)
    assert "Plan: 2 to import, 0 to add, 0 to change, 0 to destroy." in planned, planned
    applied = terraform.expect(0, *APPLY)
    assert "2 imported, 0 added, 0 changed, 0 destroyed" in applied
    assert "No changes." in terraform.expect(0, *PLAN)

    for name, described in before.items():
        after = tf_api.get(f"/v1/endpoints/{name}").json()
        assert after["updated_at"] == described["updated_at"], f"{name} was changed by the apply"
    assert tf_api.get("/v1/endpoints/exp-serverless").json()["secrets"] == {"API_KEY": "***"}
