"""Metrics tests: async ones (the sampler with the fake backend) run on asyncio."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
