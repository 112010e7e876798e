"""Control: what users asked for (the store) made true in replicas, never on the request path.

    controller.py  user operations; the gateway's narrow view (find, request_capacity); batch jobs' replicas
    reconcile.py   desired vs running: generations, rolling updates, pause, delete, crashed replicas
    autoscaler.py  demand (the gateway's traffic, the async backlog) -> a desired replica count
    memory.py      memory policing from the backend's resource figures
    live.py        EndpointLive: the small typed state control writes and others read
    observe.py     the metrics sampler

May import backends (and through them worker.launch), store, logs, metrics, spec, errors, settings.
"""

from hubserve.control.controller import Controller

__all__ = ["Controller"]
