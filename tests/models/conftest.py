"""Fixtures shared by the models tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hubserve.models.loading import LoadedModel, load_model

Load = Callable[..., LoadedModel]


@pytest.fixture(scope="module")
def load(tiny_models: dict[str, Path]) -> Load:
    """Load each (folder, task) once per module: loading is the slow part of these tests."""
    cache: dict[tuple[str, str], LoadedModel] = {}

    def get(key: str, task: str | None = None) -> LoadedModel:
        task = task or key
        if (key, task) not in cache:
            cache[key, task] = load_model(tiny_models[key], task)
        return cache[key, task]

    return get
