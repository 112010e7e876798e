"""Asynchronous inference (SageMaker's InvokeEndpointAsync): a durable queue in front of the endpoints.

    request.py     SageMaker's headers and JSON fields, checked against the limits
    payloads.py    where payloads, results and failures live; streaming a payload to disk
    service.py     accept / get / list, as the API calls them
    dispatcher.py  the queue -> the gateway (kind async) -> result, with retries and expiry; the backlog as demand
    notify.py      success and error webhooks

The queue itself is ``hubserve.store.inferences``. Control and the gateway are reached only through
the protocols in dispatcher.py (``Endpoints``) and hubserve.types (``Invoker``); the composition
root wires them.
"""

from hubserve.asyncinf.service import AsyncInference

__all__ = ["AsyncInference"]
