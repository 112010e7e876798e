"""Memory policing: a replica that uses more than its endpoint's memory size is stopped.

The replica's resident memory comes from its backend (``Backend.resources``); the limit is the
serverless memory size or the instance size's memory, capped by the machine. Not on the request path.

Who is to blame decides what happens. A replica over its limit while it holds requests was pushed
there by them (a huge batch, 500 masks, a 50 MB payload): those requests fail with a 424 ModelError
saying so, the replica is killed and replaced, the endpoint keeps running. A replica over its
limit while idle holds more than the memory size by itself (the model does not fit): the endpoint
fails with advice on the size that fits, since a replacement would only breach again.
"""

from __future__ import annotations

import asyncio
import logging

from hubserve.backends.base import Backend
from hubserve.control.live import EndpointLive
from hubserve.control.reconcile import Reconciler
from hubserve.errors import ModelError
from hubserve.logs import EventLog
from hubserve.spec import INSTANCE_SIZES, MEMORY_SIZES_MB, DedicatedCompute, ServerlessCompute


def limit_mb(compute: ServerlessCompute | DedicatedCompute, machine_mb: int) -> int:
    wanted = compute.memory_mb if isinstance(compute, ServerlessCompute) else INSTANCE_SIZES[compute.instance]["memory_mb"]
    return min(int(wanted), machine_mb)


def backstop_mb(limit: int) -> int:
    """The replica's hard cap (RLIMIT_DATA) over its policed memory size: room for what the police
    tolerates between two ticks, so only an allocation that would run far past it fails in the replica."""
    return limit + max(2048, limit)  # a replica inherits the zygote's ~0.45 GB of imported torch


def breach_message(used_mb: float, compute: ServerlessCompute | DedicatedCompute, limit: int) -> str:
    """The ModelError a user reads: the size is too small, and which size would fit."""
    needed = used_mb * 1.1
    if isinstance(compute, ServerlessCompute):
        fits = next((size for size in MEMORY_SIZES_MB if size >= needed), None)
        advice = f"use memory_mb: {fits}" if fits else "no serverless memory size fits it; use dedicated compute"
    else:
        fits_name = next((name for name, size in INSTANCE_SIZES.items() if size["memory_mb"] >= needed and size["accelerator"] == "cpu"), None)
        advice = f"use instance: {fits_name}" if fits_name else "no CPU instance size fits it"
    return (
        f"ModelError: the replica used {used_mb:.0f} MB, more than its memory size of {limit} MB, and was stopped; "
        f"the memory size is too small for this model: {advice}."
    )


def request_breach_message(used_mb: float, limit: int) -> str:
    """The ModelError the requests a replica held read when they pushed it over its memory size."""
    return (
        f"ModelError: the replica grew to {used_mb:.0f} MB while serving this request, more than the endpoint's "
        f"memory size of {limit} MB; it was killed and is being replaced. Send a smaller request (fewer inputs, "
        "a shorter text, smaller generation parameters) or give the endpoint more memory."
    )


def machine_memory_mb() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return 1 << 20


log = logging.getLogger("hubserve.memory")


class MemoryPolice:
    """Looks at every serving replica's memory once per interval."""

    def __init__(self, reconciler: Reconciler, backend: Backend, events: EventLog, interval_s: float) -> None:
        self._reconciler = reconciler
        self._backend = backend
        self._events = events
        self._interval_s = interval_s
        self.machine_mb = machine_memory_mb()

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            for live in list(self._reconciler.lives.values()):
                try:
                    self.check(live)
                except Exception:  # one endpoint's trouble must not stop the others' policing
                    log.exception("memory check of %s failed", live.name)

    def check(self, live: EndpointLive) -> None:
        """Replace a replica its requests pushed over its memory size; fail the endpoint whose model does not fit."""
        spec = live.spec
        if spec is None:
            return
        limit = limit_mb(spec.compute, self.machine_mb)
        for replica in list(live.replicas):
            used = self._backend.resources(replica)
            if used is None or used.memory_mb <= limit:
                continue
            if replica.channel is not None and replica.channel.outstanding > 0:
                reason = f"it used {used.memory_mb:.0f} MB, over its memory size of {limit} MB, while serving a request"
                error = ModelError(request_breach_message(used.memory_mb, limit))
                self._reconciler.replace_now(live, replica, reason, error)
                continue
            message = breach_message(used.memory_mb, spec.compute, limit)
            log.warning("endpoint %s: %s", live.name, message)
            self._events.event(live.name, f"replica {replica.id} stopped for its memory: {message}")
            self._reconciler.stop_now(live, replica, ModelError(message))
            self._reconciler.fail(live, message)
