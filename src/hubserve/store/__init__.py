"""Persistence of what users gave us: endpoint specs, their desired and observed state.

A leaf package (imports only hubserve.spec). SQLAlchemy Core on SQLite (WAL) by default;
any SQLAlchemy URL (PostgreSQL) works the same.
"""

from hubserve.store.endpoints import EndpointRecord, EndpointStore

__all__ = ["EndpointRecord", "EndpointStore"]
