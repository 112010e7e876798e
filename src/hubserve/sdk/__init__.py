"""The Python SDK: a synchronous HTTP client of the hubserve server.

Imports only httpx and ``hubserve.errors``; nothing from the server side.
"""

from hubserve.sdk.client import (
    Client,
    ClientError,
    Invocation,
    ServerUnreachable,
    error_from_response,
)

__all__ = ["Client", "ClientError", "Invocation", "ServerUnreachable", "error_from_response"]
