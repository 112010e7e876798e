"""API tests that run the gateway around ``fakes.FakeBackend`` use asyncio, as control does."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
