"""ListModels / ListEndpointConfigs filters and pages, and the tag store, without a server."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from hubserve.api.sagemaker import shapes
from hubserve.api.sagemaker.errors import SageMakerApiError
from hubserve.store.sagemaker import Listing, SageMakerStore
from hubserve.store.sagemaker_tags import TagStore


@pytest.fixture
def store(tmp_path: Path) -> SageMakerStore:
    return SageMakerStore(f"sqlite:///{tmp_path / 'state.db'}")


def test_models_filter_by_name_and_creation_time_and_sort(store: SageMakerStore) -> None:
    for name in ("Beta-model", "alpha-model", "other"):
        store.put_model(name, {})
        time.sleep(0.02)  # distinct creation times
    created = {name: store.get_model(name).created_at for name in ("Beta-model", "alpha-model", "other")}  # type: ignore[union-attr]

    def names(**listing: object) -> list[str]:
        return [model.name for model in store.list_models(Listing(**listing))]  # type: ignore[arg-type]

    assert names() == ["other", "alpha-model", "Beta-model"]  # newest first by default
    assert names(descending=False) == ["Beta-model", "alpha-model", "other"]
    assert names(name_contains="MODEL", sort_by="Name", descending=False) == ["Beta-model", "alpha-model"]
    assert names(name_contains="%") == [] and names(name_contains="_") == []  # LIKE wildcards are plain text
    assert names(created_after=created["Beta-model"]) == ["other", "alpha-model"]
    assert names(created_before=created["other"], created_after=created["Beta-model"]) == ["alpha-model"]
    eastern = dt.timezone(dt.timedelta(hours=-5))  # any timezone compares as the same moment
    assert names(created_before=created["alpha-model"].astimezone(eastern)) == ["Beta-model"]
    assert [config.name for config in store.list_configs(Listing())] == []


def test_pages_and_their_opaque_tokens() -> None:
    items = list(range(7))
    first, token = shapes.page(items, None, 3)
    assert first == [0, 1, 2] and token is not None and not token.isdigit()
    second, token = shapes.page(items, token, 3)
    third, last = shapes.page(items, token, 3)
    assert second == [3, 4, 5] and third == [6] and last is None
    assert shapes.page(items, None, 7) == (items, None)
    for bad in ("3", "not base64!", "aGVsbG8="):
        with pytest.raises(SageMakerApiError) as raised:
            shapes.page(items, bad, 3)
        assert raised.value.code == "ValidationException" and "NextToken" in raised.value.message


def test_arns_name_a_resource_or_are_refused() -> None:
    kind, name = shapes.parse_arn("arn:aws:sagemaker:eu-west-1:000000000000:endpoint-config/My-Config")
    assert (kind, name) == ("endpoint-config", "My-Config")
    assert shapes.resource(kind, name) == "endpoint-config/my-config"
    for bad in ("my-model", "arn:aws:sagemaker:us-east-1:000000000000:training-job/x",
                "arn:aws:s3:::bucket", "arn:aws:sagemaker:us-east-1:0:model/x"):  # fmt: skip
        with pytest.raises(SageMakerApiError) as raised:
            shapes.parse_arn(bad)
        assert raised.value.code == "ValidationException" and "ResourceArn" in raised.value.message


def test_tags_are_set_overwritten_deleted_and_kept_across_restarts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    tags = TagStore(url)
    tags.add("model/m", {"team": "search", "env": "dev"})
    tags.add("model/m", {"env": "prod"})
    tags.add("endpoint/m", {"other": "resource"})
    assert tags.list("model/m") == {"env": "prod", "team": "search"}
    tags.close()
    reopened = TagStore(url)  # a restarted server reads the same table
    assert list(reopened.list("model/m").items()) == [("env", "prod"), ("team", "search")]  # by key
    reopened.delete("model/m", ["env", "missing"])
    assert reopened.list("model/m") == {"team": "search"}
    reopened.delete("model/m")
    assert reopened.list("model/m") == {} and reopened.list("endpoint/m") == {"other": "resource"}
    reopened.close()
