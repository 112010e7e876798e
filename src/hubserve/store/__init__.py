"""Persistence of what users gave us: endpoints (spec, desired and observed state), async inferences,
batch jobs and their files, SageMaker models and endpoint configs.

A leaf package (imports only hubserve.spec). SQLAlchemy Core on SQLite (WAL) by default; any
SQLAlchemy URL (PostgreSQL) works the same. A server opens one engine (engine.py) for all tables.
"""

from hubserve.store.endpoints import EndpointRecord, EndpointStore

__all__ = ["EndpointRecord", "EndpointStore"]
