"""Replicas on a Ray cluster: ``RayBackend`` (the server's side) and ``NodeAgent`` (one actor per node).

Ray is imported only when this package is, so a server on the local backend never loads it.
"""

from hubserve.backends.ray.backend import RayBackend

__all__ = ["RayBackend"]
