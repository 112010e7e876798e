"""Where replicas run. A Backend starts and stops replicas, hands back a Channel, reports health and resources.

May import hubserve.worker (its protocol and launch), hubserve.types and the leaves (spec,
errors); nothing above it.
"""

from hubserve.backends.base import Backend, Replica, ReplicaHealth, ReplicaStartFailed, Resources
from hubserve.backends.channel import SocketChannel
from hubserve.backends.local import LocalBackend
from hubserve.backends.zygote import ZygoteUnavailable
from hubserve.worker.launch import ReplicaLaunch

__all__ = [
    "Backend",
    "LocalBackend",
    "Replica",
    "ReplicaHealth",
    "ReplicaLaunch",
    "ReplicaStartFailed",
    "Resources",
    "SocketChannel",
    "ZygoteUnavailable",
]
