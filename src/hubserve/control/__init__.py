"""Reconciles what users asked for (the store) with the replicas that run.

May import backends, models (source resolution, task inference), store, spec, errors.
"""

from hubserve.control.controller import Controller

__all__ = ["Controller"]
