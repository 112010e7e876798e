"""The spec <-> Terraform mapping without Terraform: defaults read back as null, drift shows, HCL quoting."""

from __future__ import annotations

from typing import Any

import pytest

from hubserve.spec import EndpointSpec
from hubserve.terraform import fields
from hubserve.terraform.endpoint import _seconds, _tf_path
from hubserve.terraform.hcl import _string, endpoints_as_terraform, resource_label

FIELDS = fields.endpoint_fields()


def live(**spec: Any) -> dict[str, Any]:
    """A description as the server gives it: every default filled, the task inferred, secrets redacted."""
    full = EndpointSpec.model_validate({"name": "e", "model": {"source": "/m"}, **spec}).model_dump(mode="json")
    full["model"]["task"] = full["model"]["task"] or "text-classification"
    full["secrets"] = dict.fromkeys(full["secrets"], "***")
    return {**full, "state": "running", "url": "http://h/endpoints/e"}


def test_every_spec_field_is_mapped_and_compute_is_two_blocks() -> None:
    names = [field.name for field in FIELDS]
    assert names[:4] == ["name", "model", "serverless", "dedicated"] and "compute" not in names
    assert {"env", "secrets", "batching", "generation", "async_inference", "access"} <= set(names)
    secrets = next(field for field in FIELDS if field.name == "secrets")
    assert isinstance(secrets, fields.Leaf) and secrets.sensitive and secrets.kind == "map"


def test_a_configuration_that_leaves_defaults_out_reads_back_as_it_was_written() -> None:
    written = {"name": "e", "model": {"source": "/m"}}
    state = fields.to_state(
        FIELDS, live(), prior=fields.to_state(FIELDS, live(), None) | {"model": {"source": "/m", "task": None}}
    )
    assert state["serverless"] is None and state["batching"] is None and state["env"] is None
    assert state["model"]["task"] is None  # inferred by the server: not the configuration's
    assert fields.to_spec(FIELDS, state) == written


def test_changes_made_elsewhere_show_against_the_prior_state() -> None:
    prior = fields.to_state(FIELDS, live(compute={"memory_mb": 3072}), None)
    assert prior["serverless"] == {
        "memory_mb": 3072,
        "max_concurrency": None,
        "provisioned_concurrency": None,
        "idle_timeout_s": None,
    }
    drifted = fields.to_state(FIELDS, live(compute={"memory_mb": 4096}, env={"X": "1"}), prior)
    assert drifted["serverless"]["memory_mb"] == 4096 and drifted["env"] == {"X": "1"}
    dedicated = fields.to_state(FIELDS, live(compute={"type": "dedicated"}), prior)
    assert (
        dedicated["serverless"] is None and dedicated["dedicated"] is not None
    )  # an all-default dedicated block still shows


def test_secrets_keep_the_configured_values_for_the_names_the_server_has() -> None:
    prior = {"name": "e", "model": {"source": "/m"}, "secrets": {"A": "real", "GONE": "x"}}
    state = fields.to_state(FIELDS, live(secrets={"A": "v", "NEW": "w"}), prior)
    assert state["secrets"] == {"A": "real", "NEW": "***"}
    assert fields.to_state(FIELDS, live(), None)["secrets"] is None


def test_to_spec_makes_the_compute_union_and_whole_numbers() -> None:
    state = {
        "name": "e",
        "model": {"source": "/m", "task": None},
        "dedicated": {"instance": "cpu-small", "min_replicas": 2.0, "max_replicas": 3},
    }
    spec = fields.to_spec(FIELDS, state)
    assert spec == {
        "name": "e",
        "model": {"source": "/m"},
        "compute": {"type": "dedicated", "instance": "cpu-small", "min_replicas": 2, "max_replicas": 3},
    }
    EndpointSpec.model_validate(spec)


def test_the_spec_revision_changes_with_the_spec_only() -> None:
    assert fields.spec_revision(live()) == fields.spec_revision({**live(), "state": "updating"})
    assert fields.spec_revision(live()) != fields.spec_revision(live(env={"X": "1"}))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("20m", 1200), ("1h30m", 5400), ("1.5h", 5400), ("", None), ("10", None), ("5 min", None)],
)
def test_timeouts_are_go_durations(text: str, seconds: float | None) -> None:
    assert _seconds(text) == seconds


def test_spec_errors_name_the_block_the_user_wrote() -> None:
    assert _tf_path(("compute", "serverless", "memory_mb")) == ["serverless", "memory_mb"]
    assert _tf_path(("model", "task")) == ["model", "task"]


def test_hcl_strings_labels_and_a_whole_export() -> None:
    assert _string('a "b" ${c} %{d}') == '"a \\"b\\" $${c} %%{d}"'
    assert resource_label("my-endpoint") == "my_endpoint" and resource_label("9lives") == "endpoint_9lives"
    text = endpoints_as_terraform(
        [live(env={"K": "v"}, secrets={"S": "x"}, compute={"type": "dedicated", "min_replicas": 0})], "http://h"
    )
    assert 'resource "hubserve_endpoint" "e" {' in text and "dedicated {" in text and "min_replicas = 0" in text
    assert '"K" = "v"' in text and '"S" = "***"' in text and 'task   = "text-classification"' in text
