"""HTTP routes only: management, invocation dialects (HF toolkit, SageMaker InvokeEndpoint and control plane,
HF /v2), async and batch, observability, console; the error shapes and the authentication layer.

Routes reach the server's parts through ``api.deps`` (built by hubserve.compose). May import
gateway, control, asyncinf, batch, store, spec, models (checking sources at create time), errors.
"""

from hubserve.api.app import build_app

__all__ = ["build_app"]
