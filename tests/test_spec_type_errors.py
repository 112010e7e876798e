"""A field of the wrong type names the values it takes, as an out-of-range number does (issue 14:
`memory_mb: 4GB` was answered "Input should be a valid integer")."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from hubserve.declarative.load import SpecsError, parse_specs
from hubserve.spec import EndpointSpec

MEMORY = "1024, 2048, 3072, 4096, 5120, 6144 (1024..6144 in steps of 1024)"


def messages(compute: dict[str, Any] | None = None, **extra: Any) -> list[str]:
    spec = {"name": "a", "model": {"source": "org/m"}, "compute": compute or {}, **extra}
    with pytest.raises(pydantic.ValidationError) as caught:
        EndpointSpec.model_validate(spec)
    return [error["msg"] for error in caught.value.errors()]


@pytest.mark.parametrize(
    ("compute", "message"),
    [
        ({"memory_mb": "4GB"}, f"memory_mb must be a whole number of MB, one of {MEMORY}; got '4GB'"),
        ({"memory_mb": 4096.5}, f"memory_mb must be a whole number of MB, one of {MEMORY}; got 4096.5"),
        ({"max_concurrency": "lots"}, "must be a whole number between 1 and 200; got 'lots'"),
        ({"max_concurrency": None}, "must be a whole number between 1 and 200; got null"),
        ({"type": "dedicated", "min_replicas": "one"}, "must be a whole number between 0 and 64; got 'one'"),
    ],
)
def test_type_errors_name_the_allowed_values(compute: dict[str, Any], message: str) -> None:
    assert messages(compute) == [message]


def test_range_errors_are_unchanged_and_numbers_in_strings_still_pass() -> None:
    assert messages({"memory_mb": 1000}) == [f"Value error, memory_mb must be one of {MEMORY}"]
    assert messages({"max_concurrency": 500}) == ["Value error, must be between 1 and 200 (got 500)"]
    spec = EndpointSpec.model_validate({"name": "a", "model": {"source": "org/m"}, "compute": {"memory_mb": "4096"}})
    assert spec.compute.memory_mb == 4096


def test_optional_fields_say_it_too() -> None:
    assert messages(batching={"max_batch_size": "big"}) == ["must be a whole number between 1 and 1024; got 'big'"]


def test_the_json_schema_keeps_its_bounds() -> None:
    compute = EndpointSpec.model_json_schema()["$defs"]["ServerlessCompute"]["properties"]
    assert compute["max_concurrency"]["minimum"] == 1 and compute["max_concurrency"]["maximum"] == 200
    assert compute["memory_mb"]["type"] == "integer"


def test_apply_files_word_it_the_same() -> None:
    with pytest.raises(SpecsError) as caught:
        parse_specs("name: a\nmodel: {source: org/m}\ncompute: {memory_mb: 4GB}\n", source="e.yaml")
    assert str(caught.value) == f"e.yaml: endpoint 1 ('a'): compute.memory_mb: memory_mb must be a whole number of MB, one of {MEMORY}; got '4GB'"
