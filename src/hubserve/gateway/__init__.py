"""The request path between the routes (and the async and batch queues) and a replica.

Admission -> routing (holding through a cold start) -> channel -> timing: the one way to invoke.
May import backends' channel protocol through hubserve.types, errors, spec, logs and metrics;
control is reached only through the ``Capacity`` protocol, so this package never imports it.
"""

from hubserve.gateway.admission import Admission
from hubserve.gateway.gateway import Gateway, InvocationStream
from hubserve.gateway.routing import Capacity, Holding, Routable
from hubserve.gateway.timing import Timing
from hubserve.gateway.traffic import Traffic, TrafficBook

__all__ = ["Admission", "Capacity", "Gateway", "Holding", "InvocationStream", "Routable", "Timing", "Traffic", "TrafficBook"]
