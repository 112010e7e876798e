"""A multi-model replica's models: loaded on first call, kept while the memory budget allows.

The replica is started on a folder of model folders (``ReplicaLaunch.multi_model``). A request
names its model (``Request.target_model``); ``acquire`` returns it loaded, holding the request
meanwhile (never failing it for being cold): a model that is loading is waited for, one that is
not starts loading in the loader thread (one at a time, beside the inference thread, so models
already loaded keep answering). Before a load, the least recently used models with no request in
flight are unloaded one at a time until the new one fits the budget; when every loaded model is
busy, the load waits for one to be released rather than pass the budget. A model larger than the
whole budget is refused with what to change.

Sizes: a model's expected size is its weight files' bytes (what torch holds of them once loaded),
counted against the budget from the moment its load begins; once loaded, its measured growth of
the replica's resident memory replaces the estimate where larger, except for the replica's first
load, whose growth is mostly one-time costs (lazy imports, allocator arenas, tokenizer caches) that
a second model does not pay again and that unloading cannot return. Unloading drops the replica's
references, collects them and hands freed heap back to the operating system (``malloc_trim``); the
weights were memory-mapped from their safetensors files, so unmapping them returns the rest.

Names: a plain name of the folder's entries (letters, digits, ``._-``; ``name.tar.gz`` also finds
the folder ``name``, as SageMaker clients name archives), resolved inside the root and confined to
the allowed roots like any model folder. A folder removed from the root stops being served: its
next request is answered 404 and the model is unloaded; one added is served on its first request.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import gc
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubserve.errors import ModelError, TargetModelNotFound, ValidationError
from hubserve.models.sources import MODEL_NAME as NAME
from hubserve.models.sources import SourceError, resolve_local
from hubserve.worker.protocol import HeldModel, Models

WEIGHT_SUFFIXES = (".safetensors", ".onnx", ".bin", ".pt", ".pth")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
HEADROOM = 0.9  # a default budget leaves 10% of what remains for activations and batches


def check_name(name: str) -> None:
    """A model name is one entry of the root: never a path."""
    if not NAME.fullmatch(name) or ".." in name:
        raise ValidationError(
            f"'{name}' is not a model name: use the name of a model folder in the endpoint's source "
            "(letters, digits, '.', '_' and '-'; no '/')."
        )


def weights_mb(folder: Path) -> float:
    """What a model's weights will hold in memory: the bytes of its weight files."""
    total = 0
    for entry in folder.rglob("*"):
        if entry.name.endswith(WEIGHT_SUFFIXES) and entry.is_file():
            total += entry.stat().st_size
    return total / (1024 * 1024)


def rss_mb() -> float:
    """This process's resident memory now."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


def release_memory() -> None:
    """Collect what was dropped and give freed heap back to the operating system."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the allocator keeps what it keeps
        pass
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def default_budget_mb(memory_limit_mb: float, base_mb: float) -> float:
    """The memory size less what the replica holds with no model, less headroom."""
    return max(0.0, (memory_limit_mb - base_mb) * HEADROOM)


@dataclass(eq=False)
class _Slot:
    """One model the replica has been asked for, loaded or not, and its counters."""

    name: str
    folder: Path | None  # None: a remote model not fetched yet
    model: Any = None
    fetching: asyncio.Task[None] | None = None
    loading: asyncio.Task[Any] | None = None
    size_mb: float = 0.0
    in_flight: int = 0
    last_used: float = 0.0
    load_s: float = 0.0
    loads: int = 0
    unloads: int = 0
    hits: int = 0
    misses: int = 0

    def held(self) -> HeldModel:
        state = "loaded" if self.model is not None else "loading" if self.loading is not None else "unloaded"
        return HeldModel(
            self.name, state, round(self.size_mb, 1) if state != "unloaded" else 0.0, self.last_used,
            round(self.load_s, 4), self.loads, self.unloads, self.hits, self.misses,
        )  # fmt: skip


class ModelHost:
    """The models of one multi-model replica, their memory budget and their least-recently-used order.

    ``load`` (a model folder -> a loaded model) runs in the loader thread; ``on_change`` is called on
    the event loop whenever a model starts loading, loads or unloads (the replica tells the gateway).
    With ``fetch`` (a name -> a local folder, blocking: an ``s3://`` prefix's archive downloaded and
    extracted), models are not looked up under ``root`` but fetched on their first call, in a fetch
    thread; a model once fetched keeps its folder, as SageMaker keeps its copy when the object goes.
    """

    def __init__(
        self, root: Path, load: Callable[[Path], Any], budget_mb: float, *, allowed_roots: list[Path] | None = None,
        on_change: Callable[[], None] | None = None, fetch: Callable[[str], Path] | None = None,
    ) -> None:  # fmt: skip
        self.root = root
        self._fetch = fetch
        self._fetcher = ThreadPoolExecutor(max_workers=2, thread_name_prefix="model-fetch") if fetch else None
        self.budget_mb = budget_mb
        self._load = load
        self._allowed_roots = allowed_roots or [root]
        self.on_change = on_change or (lambda: None)
        self._slots: dict[str, _Slot] = {}
        self._aliases: dict[str, str] = {}  # "m.tar.gz" -> "m": one model, whichever name asks for it
        self._lru: collections.OrderedDict[str, _Slot] = collections.OrderedDict()  # loaded, oldest use first
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")
        self._released: asyncio.Event | None = None
        self._measured_once = False  # the first load's growth is one-time costs, not the model's size

    @property
    def used_mb(self) -> float:
        """Memory counted against the budget: loaded models and those loading."""
        return sum(slot.size_mb for slot in self._slots.values() if slot.model is not None or slot.loading is not None)

    def report(self) -> Models:
        return Models([slot.held() for slot in self._slots.values()], round(self.budget_mb, 1), round(self.used_mb, 1))

    def loaded(self) -> list[str]:
        """Loaded models, least recently used first."""
        return list(self._lru)

    async def acquire(self, name: str) -> Any:
        """The model ``name``, loaded; the caller must ``release`` it when its request is done."""
        slot = self._slot(name)
        waited = False
        while True:
            if slot.model is not None:
                if waited:
                    slot.misses += 1
                else:
                    slot.hits += 1
                slot.in_flight += 1
                slot.last_used = time.time()
                self._lru.move_to_end(slot.name)
                return slot.model
            waited = True
            if slot.folder is None:
                await self._fetched(slot)
                continue
            if slot.loading is None and not await self._start_load(slot):
                continue  # waited for memory to be released; look again
            assert slot.loading is not None
            await asyncio.shield(slot.loading)  # a load failure is raised to every request waiting on it

    def release(self, name: str) -> None:
        """A request for ``name`` is done: the model may be unloaded again once none is in flight."""
        slot = self._slots.get(self._aliases.get(name, name))
        if slot is None:
            return
        slot.in_flight -= 1
        if slot.in_flight == 0 and self._released is not None:
            released, self._released = self._released, None
            released.set()

    def unload(self, name: str) -> bool:
        """Unload ``name`` now if it is loaded and idle; True when it was."""
        slot = self._slots.get(name)
        if slot is None or slot.model is None or slot.in_flight > 0:
            return False
        slot.model = None
        slot.unloads += 1
        self._lru.pop(name, None)
        release_memory()
        self.on_change()
        return True

    def close(self) -> None:
        self._loader.shutdown(wait=False, cancel_futures=True)
        if self._fetcher is not None:
            self._fetcher.shutdown(wait=False, cancel_futures=True)

    async def _fetched(self, slot: _Slot) -> None:
        """Fetch a remote model's files once, however many requests wait for them."""
        if slot.fetching is None:
            slot.fetching = asyncio.get_running_loop().create_task(self._fetch_slot(slot))
            slot.fetching.add_done_callback(_retrieved)
        await asyncio.shield(slot.fetching)

    async def _fetch_slot(self, slot: _Slot) -> None:
        assert self._fetch is not None and self._fetcher is not None
        try:
            slot.folder = await asyncio.get_running_loop().run_in_executor(self._fetcher, self._fetch, slot.name)
        finally:
            slot.fetching = None

    def _slot(self, name: str) -> _Slot:
        if self._fetch is not None:  # remote: any plain name, looked for when fetched
            slot = self._slots.get(name)
            if slot is None:
                check_name(name)
                slot = self._slots[name] = _Slot(name, None)
            return slot
        name = self._aliases.get(name, name)
        slot = self._slots.get(name)
        if slot is not None and slot.model is not None and (self.root / name).is_dir():
            return slot  # the common case costs one stat, not a walk of the folder
        check_name(name)
        found = self._folder(name)
        if found is not None and found[0] != name:  # an archive's name: the folder's model, under the folder's name
            self._aliases[name] = found[0]
            return self._slot(found[0])
        folder = found[1] if found is not None else None
        if folder is None:
            if slot is not None:
                self.unload(name)  # removed from the root: no longer served
            raise TargetModelNotFound(
                f"Model '{name}' is not in this endpoint's models ({self.root}): add its folder there, or name one "
                "that is (GET /v1/endpoints/{endpoint}/models lists them)."
            )
        if slot is None:
            slot = self._slots[name] = _Slot(name, folder)
        elif slot.folder != folder and self.unload(name):  # its folder moved (a link re-pointed): load it afresh
            slot.folder = folder
        return slot

    def _folder(self, name: str) -> tuple[str, Path] | None:
        """The model ``name`` finds inside the root, and its folder, checked like any model folder; None: none."""
        candidates = [name]
        for suffix in ARCHIVE_SUFFIXES:
            if name.endswith(suffix):
                candidates.append(name.removesuffix(suffix))
        for candidate in candidates:
            path = self.root / candidate
            if not path.is_dir():
                continue
            try:
                return candidate, resolve_local(str(path), self._allowed_roots)
            except SourceError as exc:
                raise ValidationError(f"Model '{name}' cannot be served: {exc}") from None
        return None

    async def _start_load(self, slot: _Slot) -> bool:
        """Begin loading ``slot`` once it fits (unloading idle models, oldest first); False after waiting."""
        assert slot.folder is not None
        estimate = weights_mb(slot.folder)
        if estimate > self.budget_mb:
            raise ModelError(
                f"Model '{slot.name}' needs about {estimate:.0f} MB, more than the {self.budget_mb:.0f} MB this "
                "endpoint's replicas keep for models; raise model.models_memory_mb or the endpoint's memory size."
            )
        while self.used_mb + estimate > self.budget_mb:
            idle = next((name for name, loaded in self._lru.items() if loaded.in_flight == 0), None)
            if idle is None:  # every loaded model has requests in flight: wait for one to finish
                if self._released is None:
                    self._released = asyncio.Event()
                await self._released.wait()
                return False
            self.unload(idle)
        slot.size_mb = estimate
        slot.loading = asyncio.get_running_loop().create_task(self._load_slot(slot, estimate))
        slot.loading.add_done_callback(_retrieved)  # every request waiting on it may have left
        self.on_change()
        return True

    async def _load_slot(self, slot: _Slot, estimate: float) -> None:
        assert slot.folder is not None
        before = rss_mb()
        started = time.perf_counter()
        try:
            model = await asyncio.get_running_loop().run_in_executor(self._loader, self._load, slot.folder)
        except Exception as exc:
            slot.size_mb = 0.0
            raise ModelError(f"Model '{slot.name}' failed to load: {type(exc).__name__}: {exc}") from None
        finally:
            slot.loading = None
            self.on_change()
        slot.load_s = time.perf_counter() - started
        if self._measured_once:
            slot.size_mb = max(estimate, rss_mb() - before)
        self._measured_once = True
        slot.model = model
        slot.loads += 1
        self._lru[slot.name] = slot
        self.on_change()



def _retrieved(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()
