"""The SageMaker store: models and configs never overwritten, bindings replaced."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubserve.store.sagemaker import SageMakerStore


def test_definitions_and_bindings(tmp_path: Path) -> None:
    store = SageMakerStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.put_model("m", {"PrimaryContainer": {"ModelDataUrl": "/x"}})
    with pytest.raises(KeyError):
        store.put_model("m", {})
    model = store.get_model("m")
    assert model is not None and model.definition["PrimaryContainer"]["ModelDataUrl"] == "/x"
    assert model.created_at.tzinfo is not None
    store.put_config("c", {"ProductionVariants": []})
    store.bind("ep", "c")
    store.bind("ep", "c2")
    assert store.binding("ep") == "c2"
    store.unbind("ep")
    assert store.binding("ep") is None
    assert store.delete_model("m") and not store.delete_model("m")
    assert store.get_model("m") is None and store.get_config("c") is not None
    store.close()
