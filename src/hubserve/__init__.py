"""hubserve: self-hosted serverless and dedicated inference for Hugging Face models.

The public names load lazily (PEP 562) so that ``import hubserve.worker...`` in a
replica, or the zygote before it forks, pays for none of httpx or pydantic.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Client",
    "EndpointSpec",
    "HubserveError",
    "Invocation",
    "__version__",
]

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "Client": "hubserve.sdk.client",
    "EndpointSpec": "hubserve.spec",
    "HubserveError": "hubserve.errors",
    "Invocation": "hubserve.sdk.client",
}

if TYPE_CHECKING:
    from hubserve.errors import HubserveError
    from hubserve.sdk.client import Client, Invocation
    from hubserve.spec import EndpointSpec


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hubserve' has no attribute '{name}'")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
