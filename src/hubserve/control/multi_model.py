"""What control knows of a multi-model endpoint's models: its folder's entries and its replicas' reports.

Each replica of a multi-model endpoint reports its models (``worker.protocol.Models``: loaded,
loading or unloaded, size, last use, load time, counters) whenever one loads or unloads; the
channel keeps the latest report. ``listing`` merges those with the models in the endpoint's folder
now (the API's ``GET /v1/endpoints/{name}/models``); ``ModelCounters`` turns the replicas'
counters into the metrics' increments, as the sampler reads them (never on the request path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hubserve.control.live import EndpointLive
from hubserve.metrics import Metrics
from hubserve.models.archives import ARCHIVE_SUFFIXES
from hubserve.models.sources import list_model_folders
from hubserve.storage import Location
from hubserve.worker.protocol import HeldModel, Models

_COUNTED = ("loads", "unloads", "hits", "misses")
_MARKERS = ("config.json", "modules.json")


def reports(live: EndpointLive) -> dict[str, Models]:
    """Each ready replica's latest report of its models, by replica id."""
    found: dict[str, Models] = {}
    for replica in live.replicas:
        report = getattr(replica.channel, "models", None)
        if isinstance(report, Models):
            found[replica.id] = report
    return found


def names_under(prefix: Location) -> list[str]:
    """The models under an object-store prefix: its archives and its folders holding a config.json (blocking)."""
    base = prefix.url.rstrip("/") + "/"
    names: set[str] = set()
    for found in prefix.files():
        relative = found.url[len(base):]
        head, _, rest = relative.partition("/")
        if (not rest and head.endswith(ARCHIVE_SUFFIXES)) or rest in _MARKERS or any(rest.endswith("/" + marker) for marker in _MARKERS):
            names.add(head)
    return sorted(names)


def folder_names(root: Path) -> list[str]:
    return list_model_folders(root)


def listing(live: EndpointLive, source: str | None, names: list[str]) -> dict[str, Any]:
    """Every model the endpoint serves now (``names``, what its ``source`` holds) or has served, with where and how
    it is loaded."""
    by_replica = reports(live)
    models: dict[str, dict[str, Any]] = {
        name: _entry(name, available=True) for name in names
    }
    for replica_id, report in by_replica.items():
        for held in report.held:
            entry = models.get(held.name)
            if entry is None:  # served once, since removed from the folder
                entry = models[held.name] = _entry(held.name, available=False)
            _merge(entry, replica_id, held)
    budget = [report.budget_mb for report in by_replica.values()]
    spec = live.spec
    configured = spec.model.models_memory_mb if spec is not None else None
    return {
        "endpoint": live.name,
        "source": source,
        "models_memory_mb": max(budget) if budget else configured,  # as the replicas measured it, else as set
        "replicas": {replica_id: {"used_mb": report.used_mb, "budget_mb": report.budget_mb} for replica_id, report in by_replica.items()},
        "models": sorted(models.values(), key=lambda entry: entry["name"]),
    }


def _entry(name: str, *, available: bool) -> dict[str, Any]:
    return {
        "name": name, "available": available, "state": "unloaded", "replicas": [], "size_mb": None,
        "last_used": None, "load_s": None, "loads": 0, "unloads": 0, "hits": 0, "misses": 0,
    }  # fmt: skip


def _merge(entry: dict[str, Any], replica_id: str, held: HeldModel) -> None:
    """One replica's view of a model into the endpoint's: loaded anywhere beats loading beats unloaded."""
    rank = {"unloaded": 0, "loading": 1, "loaded": 2}
    if held.state != "unloaded":
        entry["replicas"].append(replica_id)
        entry["size_mb"] = max(entry["size_mb"] or 0.0, held.size_mb)
    if rank[held.state] > rank[entry["state"]]:
        entry["state"] = held.state
    if held.last_used and (entry["last_used"] is None or held.last_used > entry["last_used"]):
        entry["last_used"] = held.last_used
    if held.load_s:
        entry["load_s"] = held.load_s
    for counter in _COUNTED:
        entry[counter] += getattr(held, counter)


class ModelCounters:
    """The replicas' cumulative counters, remembered per replica and model, turned into metric increments."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], HeldModel] = {}

    def record(self, live: EndpointLive, metrics: Metrics, seen: set[str]) -> None:
        for replica_id, report in reports(live).items():
            seen.add(replica_id)
            for held in report.held:
                before = self._last.get((replica_id, held.name))
                counts = {counter: getattr(held, counter) - (getattr(before, counter) if before else 0) for counter in _COUNTED}
                if any(counts.values()):
                    metrics.model_cache(live.name, held.name, counts, held.load_s if counts["loads"] > 0 else None)
                self._last[(replica_id, held.name)] = held

    def forget(self, alive: set[str]) -> None:
        """Replicas that are gone: their counters go with them."""
        for key in [key for key in self._last if key[0] not in alive]:
            del self._last[key]
