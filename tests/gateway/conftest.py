"""Gateway tests run control and the gateway around ``fakes.FakeBackend`` (wired as compose.running does)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """``@pytest.mark.anyio`` tests run on asyncio (control's loops use asyncio directly)."""
    return "asyncio"
