"""What a running server is made of, as the routes see it: one typed container the composition root fills.

Routes reach these through ``hubserve.api.deps`` (typed accessors and FastAPI dependencies),
never through ad-hoc ``app.state`` look-ups.
"""

from __future__ import annotations

import dataclasses

from hubserve.asyncinf import AsyncInference
from hubserve.backends.base import Backend
from hubserve.batch.runner import BatchJobRunner
from hubserve.control.controller import Controller
from hubserve.gateway import Gateway
from hubserve.logs import EventLog
from hubserve.metrics import Metrics
from hubserve.settings import Settings
from hubserve.storage import Storage
from hubserve.store.audit import AuditStore
from hubserve.store.sagemaker import SageMakerStore
from hubserve.store.tokens import TokenStore


@dataclasses.dataclass(frozen=True, eq=False)
class Services:
    settings: Settings
    storage: Storage
    events: EventLog
    metrics: Metrics
    backend: Backend
    controller: Controller
    gateway: Gateway
    async_inference: AsyncInference
    batch_jobs: BatchJobRunner
    sagemaker_store: SageMakerStore
    tokens: TokenStore  # scoped API tokens; the auth layer verifies every request against it
    audit: AuditStore  # the audit log of changes, written by api.audit.AuditLog
