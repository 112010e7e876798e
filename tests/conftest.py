"""Session fixtures shared by every test folder: the tiny model folders, built once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tiny_models, however pytest imports this file

import tiny_models as builders
from s3_server import s3_server  # noqa: F401 - session fixture: a real S3 API server


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Task name (plus "sentence-transformers", "custom-handler", "custom-inference") -> folder."""
    return builders.build_all(tmp_path_factory.mktemp("tiny-models"))
