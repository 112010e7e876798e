"""HTTP routes only: management, invocation dialects (HF toolkit, TGI and OpenAI in ``generation/``, SageMaker
InvokeEndpoint and control plane, HF /v2), async and batch, observability, console; the error shapes and the
authentication layer.

Routes reach the server's parts through ``api.deps`` (built by hubserve.compose). May import
services, gateway, control, asyncinf, batch, store, models (checking sources at create time), the
utilities (logs, metrics, storage, cost, console) and the leaves; never backends or the worker.
"""

from hubserve.api.app import build_app

__all__ = ["build_app"]
