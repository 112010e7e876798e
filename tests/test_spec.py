"""hubserve.spec and hubserve.tasks: defaults, every limit, task names, merge patch, vCPUs."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubserve.spec import (
    INSTANCE_SIZES,
    MEMORY_SIZES_MB,
    DedicatedCompute,
    EndpointSpec,
    ModelSpec,
    ServerlessCompute,
    merge_patch,
    merge_patch_for,
    vcpus_for,
)
from hubserve.tasks import TASK_ALIASES, TASKS, normalize_task


def spec(**fields: Any) -> EndpointSpec:
    return EndpointSpec.model_validate({"name": "ok", "model": {"source": "org/name"}, **fields})


def error_of(excinfo: pytest.ExceptionInfo[pydantic.ValidationError]) -> tuple[str, str]:
    """(dotted field, message) of the only error, without the union's variant name."""
    errors = excinfo.value.errors()
    assert len(errors) == 1, errors
    loc = [str(part) for part in errors[0]["loc"] if part not in ("serverless", "dedicated")]
    return ".".join(loc), errors[0]["msg"]


# --- defaults ---------------------------------------------------------------------------


def test_defaults_are_a_small_serverless_endpoint() -> None:
    endpoint = spec()
    assert endpoint.compute == ServerlessCompute()
    assert isinstance(endpoint.compute, ServerlessCompute)
    assert endpoint.compute.memory_mb == 2048
    assert endpoint.compute.max_concurrency == 5
    assert endpoint.compute.provisioned_concurrency == 0
    assert endpoint.compute.idle_timeout_s == 300
    assert endpoint.env == {} and endpoint.custom_code is False
    assert endpoint.model == ModelSpec(source="org/name")
    assert (endpoint.model.revision, endpoint.model.task, endpoint.model.framework, endpoint.model.dtype) == (
        None, None, "pytorch", "auto",
    )  # fmt: skip


def test_dedicated_defaults_to_one_cpu_small_replica() -> None:
    compute = spec(compute={"type": "dedicated"}).compute
    assert isinstance(compute, DedicatedCompute)
    assert (compute.instance, compute.min_replicas, compute.max_replicas) == ("cpu-small", 1, 1)


def test_a_spec_round_trips_through_json() -> None:
    original = spec(compute={"type": "dedicated", "instance": "cpu-large", "max_replicas": 3}, env={"A": "1"})
    assert EndpointSpec.model_validate_json(original.model_dump_json()) == original


# --- serverless limits ------------------------------------------------------------------


@pytest.mark.parametrize("memory_mb", MEMORY_SIZES_MB)
def test_every_memory_size_is_accepted(memory_mb: int) -> None:
    assert spec(compute={"type": "serverless", "memory_mb": memory_mb}).compute.memory_mb == memory_mb


def test_memory_sizes_are_1024_to_6144_in_steps_of_1024() -> None:
    assert tuple(range(1024, 6144 + 1, 1024)) == MEMORY_SIZES_MB


@pytest.mark.parametrize("memory_mb", [0, 512, 1023, 1025, 1500, 2047, 6145, 7168, 10240, -1024])
def test_other_memory_sizes_name_the_allowed_range(memory_mb: int) -> None:
    with pytest.raises(pydantic.ValidationError) as excinfo:
        spec(compute={"type": "serverless", "memory_mb": memory_mb})
    field, message = error_of(excinfo)
    assert field == "compute.memory_mb"
    assert "1024..6144 in steps of 1024" in message and "1024, 2048, 3072, 4096, 5120, 6144" in message


@pytest.mark.parametrize("value", [1, 5, 199, 200])
def test_max_concurrency_within_1_to_200(value: int) -> None:
    assert spec(compute={"type": "serverless", "max_concurrency": value}).compute.max_concurrency == value


@pytest.mark.parametrize(("value", "bound"), [(0, "1 and 200"), (-3, "1 and 200"), (201, "1 and 200")])
def test_max_concurrency_outside_1_to_200(value: int, bound: str) -> None:
    with pytest.raises(pydantic.ValidationError) as excinfo:
        spec(compute={"type": "serverless", "max_concurrency": value})
    field, message = error_of(excinfo)
    assert field == "compute.max_concurrency" and f"must be between {bound} (got {value})" in message


@pytest.mark.parametrize(("provisioned", "maximum"), [(0, 1), (5, 5), (3, 10), (200, 200)])
def test_provisioned_concurrency_up_to_max(provisioned: int, maximum: int) -> None:
    compute = spec(compute={"type": "serverless", "provisioned_concurrency": provisioned, "max_concurrency": maximum}).compute
    assert isinstance(compute, ServerlessCompute) and compute.provisioned_concurrency == provisioned


@pytest.mark.parametrize(("provisioned", "maximum"), [(6, 5), (2, 1), (200, 199)])
def test_provisioned_concurrency_above_max_names_the_range(provisioned: int, maximum: int) -> None:
    with pytest.raises(pydantic.ValidationError) as excinfo:
        spec(compute={"type": "serverless", "provisioned_concurrency": provisioned, "max_concurrency": maximum})
    field, message = error_of(excinfo)
    assert field == "compute"
    assert f"provisioned_concurrency ({provisioned}) must be between 0 and max_concurrency ({maximum})" in message


def test_provisioned_concurrency_above_the_default_max() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"between 0 and max_concurrency \(5\)"):
        ServerlessCompute(provisioned_concurrency=6)


@pytest.mark.parametrize(
    ("fields", "field", "bound"),
    [
        ({"provisioned_concurrency": -1}, "compute.provisioned_concurrency", "0 and 200"),
        ({"idle_timeout_s": 0}, "compute.idle_timeout_s", "1 and 86400"),
        ({"idle_timeout_s": 86401}, "compute.idle_timeout_s", "1 and 86400"),
    ],
)
def test_other_serverless_limits(fields: dict[str, int], field: str, bound: str) -> None:
    with pytest.raises(pydantic.ValidationError) as excinfo:
        spec(compute={"type": "serverless", **fields})
    actual_field, message = error_of(excinfo)
    assert actual_field == field and f"must be between {bound}" in message


# --- dedicated limits -------------------------------------------------------------------


@pytest.mark.parametrize("instance", list(INSTANCE_SIZES))
def test_every_instance_size_is_accepted(instance: str) -> None:
    assert DedicatedCompute(instance=instance).instance == instance


@pytest.mark.parametrize("instance", ["cpu-huge", "CPU-SMALL", "", "gpu", "cpu-small "])
def test_unknown_instance_lists_the_choices(instance: str) -> None:
    with pytest.raises(pydantic.ValidationError) as excinfo:
        spec(compute={"type": "dedicated", "instance": instance})
    field, message = error_of(excinfo)
    assert field == "compute.instance"
    assert f"unknown instance '{instance}'" in message and ", ".join(INSTANCE_SIZES) in message


@pytest.mark.parametrize(("minimum", "maximum"), [(0, 1), (1, 1), (2, 5), (64, 64)])
def test_min_replicas_up_to_max_replicas(minimum: int, maximum: int) -> None:
    compute = DedicatedCompute(min_replicas=minimum, max_replicas=maximum)
    assert (compute.min_replicas, compute.max_replicas) == (minimum, maximum)


@pytest.mark.parametrize(("minimum", "maximum"), [(2, 1), (64, 63)])
def test_min_replicas_above_max_replicas(minimum: int, maximum: int) -> None:
    with pytest.raises(pydantic.ValidationError) as excinfo:
        spec(compute={"type": "dedicated", "min_replicas": minimum, "max_replicas": maximum})
    field, message = error_of(excinfo)
    assert field == "compute"
    assert f"min_replicas ({minimum}) must not exceed max_replicas ({maximum})" in message


@pytest.mark.parametrize(
    ("fields", "field", "bound"),
    [
        ({"min_replicas": -1}, "compute.min_replicas", "0 and 64"),
        ({"max_replicas": 0}, "compute.max_replicas", "1 and 64"),
        ({"max_replicas": 65}, "compute.max_replicas", "1 and 64"),
        ({"target_concurrency": 0}, "compute.target_concurrency", "1 and 1000"),
        ({"target_concurrency": 1001}, "compute.target_concurrency", "1 and 1000"),
        ({"scale_to_zero_after_s": 0}, "compute.scale_to_zero_after_s", "1 and 86400"),
    ],
)
def test_other_dedicated_limits(fields: dict[str, int], field: str, bound: str) -> None:
    with pytest.raises(pydantic.ValidationError) as excinfo:
        spec(compute={"type": "dedicated", **fields})
    actual_field, message = error_of(excinfo)
    assert actual_field == field and f"must be between {bound}" in message


def test_unknown_compute_type_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError) as excinfo:
        spec(compute={"type": "quantum"})
    field, message = error_of(excinfo)
    assert field == "compute" and "'serverless', 'dedicated'" in message


# --- names ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "7", "my-endpoint", "a1-b2-c3", "x" * 63, "a" + "-" * 61 + "z", "0-0"])
def test_dns_safe_names(name: str) -> None:
    assert spec(name=name).name == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * 64,
        "-leading",
        "trailing-",
        "-",
        "Upper",
        "ALLCAPS",
        "under_score",
        "dot.ted",
        "sp ace",
        " padded",
        "slash/name",
        "ünïcode",
    ],
)
def test_names_that_are_not_dns_safe(name: str) -> None:
    with pytest.raises(pydantic.ValidationError) as excinfo:
        spec(name=name)
    field, message = error_of(excinfo)
    assert field == "name"
    assert "DNS-safe" in message and "1-63" in message


def test_a_trailing_newline_is_not_dns_safe() -> None:
    with pytest.raises(pydantic.ValidationError):
        spec(name="abc\n")


# --- model and tasks --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("sentiment-analysis", "text-classification"),
        ("ner", "token-classification"),
        ("sentence-embedding", "sentence-embeddings"),
        ("sentence_embedding", "sentence-embeddings"),
        ("translation_en_to_fr", "translation"),
        ("translation-de-to-en", "translation"),
        ("Translation_EN_to_FR", "translation"),
        ("text_classification", "text-classification"),
        ("Text-Classification", "text-classification"),
        ("  fill-mask  ", "fill-mask"),
        ("NER", "token-classification"),
        ("Sentiment_Analysis", "text-classification"),
    ],
)
def test_task_aliases_and_spellings(written: str, canonical: str) -> None:
    assert normalize_task(written) == canonical
    assert ModelSpec(source="org/name", task=written).task == canonical


@pytest.mark.parametrize("task", TASKS)
def test_every_canonical_task_is_its_own_name(task: str) -> None:
    assert normalize_task(task) == task


def test_aliases_point_at_served_tasks() -> None:
    assert set(TASK_ALIASES.values()) <= set(TASKS)
    assert not set(TASK_ALIASES) & set(TASKS)


@pytest.mark.parametrize("task", ["image-to-banana", "translation-en", "translation-fr", "", "ner2", "Text To Speech"])
def test_unknown_task_lists_the_supported_tasks(task: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        normalize_task(task)
    assert str(excinfo.value) == f"unknown task '{task}'; supported tasks: {', '.join(TASKS)}"


def test_unknown_task_in_a_spec_is_a_model_task_error() -> None:
    with pytest.raises(pydantic.ValidationError) as excinfo:
        spec(model={"source": "org/name", "task": "image-to-banana"})
    field, message = error_of(excinfo)
    assert field == "model.task"
    assert "unknown task 'image-to-banana'" in message and all(task in message for task in TASKS)


@pytest.mark.parametrize("source", ["", "   ", "\t\n"])
def test_source_must_not_be_blank(source: str) -> None:
    with pytest.raises(pydantic.ValidationError) as excinfo:
        ModelSpec(source=source)
    assert "source must name a local folder or a Hub repo id" in str(excinfo.value)


def test_source_is_stripped() -> None:
    assert ModelSpec(source="  org/name \n").source == "org/name"


@pytest.mark.parametrize(("field", "value"), [("framework", "tensorflow"), ("dtype", "int8")])
def test_only_pytorch_and_known_dtypes(field: str, value: str) -> None:
    with pytest.raises(pydantic.ValidationError) as excinfo:
        spec(model={"source": "org/name", field: value})
    assert error_of(excinfo)[0] == f"model.{field}"


# --- extra fields -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"unexpected": 1}, "unexpected"),
        ({"model": {"source": "org/name", "weights": "x"}}, "model.weights"),
        ({"compute": {"type": "serverless", "instance": "cpu-small"}}, "compute.instance"),
        ({"compute": {"type": "dedicated", "memory_mb": 2048}}, "compute.memory_mb"),
    ],
)
def test_extra_fields_are_forbidden(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(pydantic.ValidationError) as excinfo:
        spec(**fields)
    errors = excinfo.value.errors()
    assert [error["type"] for error in errors] == ["extra_forbidden"]
    assert error_of(excinfo)[0] == field


# --- merge_patch (RFC 7386) ---------------------------------------------------------------

# RFC 7386 appendix A, plus the shapes PATCH /v1/endpoints/{name} sends.
RFC_7386_CASES: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ({}, {}, {}),
    ({"a": 1}, {}, {"a": 1}),
    ({"a": {"b": 1, "c": 2}}, {"a": None}, {}),
    ({"a": {"b": {"c": 1, "d": 2}}}, {"a": {"b": {"d": None, "e": 3}}}, {"a": {"b": {"c": 1, "e": 3}}}),
    ({"a": 1}, {"missing": None}, {"a": 1}),
    ({"a": {"b": 1}}, {"a": "flat"}, {"a": "flat"}),
    ({"a": {"b": 1}}, {"a": {}}, {"a": {"b": 1}}),
    (
        {"name": "e", "model": {"source": "/m", "task": "ner"}, "compute": {"type": "serverless", "memory_mb": 2048}},
        {"model": {"task": None}, "compute": {"memory_mb": 4096}, "env": {"X": "1"}},
        {"name": "e", "model": {"source": "/m"}, "compute": {"type": "serverless", "memory_mb": 4096}, "env": {"X": "1"}},
    ),
]


@pytest.mark.parametrize(("base", "patch", "merged"), RFC_7386_CASES)
def test_merge_patch(base: dict[str, Any], patch: dict[str, Any], merged: dict[str, Any]) -> None:
    assert merge_patch(base, patch) == merged


_KEYS = st.sampled_from(["a", "b", "c", "name", "env"])
_LEAVES = st.one_of(st.integers(-3, 3), st.text(max_size=3), st.booleans(), st.lists(st.integers(0, 2), max_size=2))
_DOCS = st.recursive(_LEAVES, lambda inner: st.dictionaries(_KEYS, inner, max_size=4), max_leaves=12)


@settings(deadline=None)  # the first example pays for imports; a slow machine is not a failure
@given(st.dictionaries(_KEYS, _DOCS, max_size=4), st.dictionaries(_KEYS, _DOCS, max_size=4))
def test_merge_patch_for_turns_one_document_into_the_other(current: dict[str, Any], wanted: dict[str, Any]) -> None:
    # The Terraform provider updates an endpoint with the patch from its live spec to the configuration's.
    assert merge_patch(current, merge_patch_for(current, wanted)) == wanted
    assert merge_patch_for(wanted, wanted) == {}


@pytest.mark.parametrize(
    ("base", "patch", "merged"),
    [
        ({"a": "foo"}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),  # RFC 7386 appendix A
        ({}, {"env": {"A": "1", "B": None}}, {"env": {"A": "1"}}),
    ],
)
def test_merge_patch_drops_nulls_inside_new_objects(
    base: dict[str, Any], patch: dict[str, Any], merged: dict[str, Any]
) -> None:
    assert merge_patch(base, patch) == merged


def test_merge_patch_leaves_its_inputs_alone() -> None:
    base = {"model": {"source": "/m", "task": "ner"}, "env": {"A": "1"}}
    patch = {"model": {"task": None}, "env": {"B": "2"}}
    merge_patch(base, patch)
    assert base == {"model": {"source": "/m", "task": "ner"}, "env": {"A": "1"}}
    assert patch == {"model": {"task": None}, "env": {"B": "2"}}


# --- vCPUs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("memory_mb", "vcpus"), [(1024, 1), (2048, 1), (3072, 2), (4096, 2), (5120, 3), (6144, 3)]
)
def test_serverless_vcpus_follow_memory(memory_mb: int, vcpus: int) -> None:
    assert vcpus_for(ServerlessCompute(memory_mb=memory_mb), machine_cores=64) == vcpus


@pytest.mark.parametrize("instance", list(INSTANCE_SIZES))
def test_dedicated_vcpus_follow_the_instance(instance: str) -> None:
    assert vcpus_for(DedicatedCompute(instance=instance), machine_cores=64) == INSTANCE_SIZES[instance]["vcpus"]


@pytest.mark.parametrize(
    ("compute", "cores", "vcpus"),
    [
        (ServerlessCompute(memory_mb=6144), 2, 2),
        (ServerlessCompute(memory_mb=6144), 3, 3),
        (DedicatedCompute(instance="gpu-large"), 8, 8),
        (DedicatedCompute(instance="cpu-large"), 1, 1),
        (DedicatedCompute(instance="cpu-small"), 16, 1),
        (ServerlessCompute(memory_mb=1024), 0, 1),  # never below one
        (DedicatedCompute(instance="cpu-xlarge"), 0, 1),
    ],
)
def test_vcpus_are_capped_by_the_machine(compute: ServerlessCompute | DedicatedCompute, cores: int, vcpus: int) -> None:
    assert vcpus_for(compute, machine_cores=cores) == vcpus


def test_compute_without_type_is_serverless() -> None:
    compute = spec(compute={"memory_mb": 4096}).compute
    assert isinstance(compute, ServerlessCompute) and compute.memory_mb == 4096


@pytest.mark.parametrize("task", ["translation_to_fr", "translation-en", "translation-en-to-"])
def test_malformed_translation_tasks_are_unknown(task: str) -> None:
    with pytest.raises(ValueError, match="unknown task"):
        normalize_task(task)
