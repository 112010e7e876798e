"""Where replicas run. A Backend starts and stops replica processes and hands back a channel.

May import hubserve.worker (its protocol) and the leaves (spec, errors); nothing above it.
"""

from hubserve.backends.base import Backend, ReplicaHandle, ReplicaLaunch, ReplicaStartFailed
from hubserve.backends.channel import ReplicaChannel
from hubserve.backends.local import LocalBackend
from hubserve.backends.zygote import ZygoteUnavailable

__all__ = [
    "Backend",
    "LocalBackend",
    "ReplicaChannel",
    "ReplicaHandle",
    "ReplicaLaunch",
    "ReplicaStartFailed",
    "ZygoteUnavailable",
]
