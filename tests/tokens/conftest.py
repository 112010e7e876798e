"""The session's real `hubserve serve` (tests/integration/conftest.py) for the token and audit tests."""

from __future__ import annotations

from tests.integration.conftest import api, server  # noqa: F401 - session fixtures: a real server and its admin client
