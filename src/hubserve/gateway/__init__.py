"""The request path between the HTTP routes and a replica: routing, timing, error mapping.

May import backends (channels), errors and spec; the controller is reached through the
Router protocol so this package does not depend on how replicas are managed.
"""

from hubserve.gateway.gateway import Gateway, InvocationResult, Router

__all__ = ["Gateway", "InvocationResult", "Router"]
