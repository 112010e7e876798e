"""Asynchronous inference (SageMaker's InvokeEndpointAsync): a durable queue in front of the endpoints.

    request.py     SageMaker's headers and JSON fields, checked against the limits
    payloads.py    where payloads, results and failures live; streaming a payload to disk
    service.py     accept / get / list, as the API calls them
    dispatcher.py  the queue -> Controller.acquire -> replica -> result, with retries and expiry
    notify.py      success and error webhooks

The queue itself is ``hubserve.store.inferences``.
"""

from hubserve.asyncinf.service import AsyncInference

__all__ = ["AsyncInference"]
