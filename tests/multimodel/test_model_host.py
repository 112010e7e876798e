"""The multi-model replica's host, in-process on real model folders: load on demand, LRU, in-flight, memory."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from hubserve.errors import ModelError, TargetModelNotFound, ValidationError
from hubserve.models.loading import load_model
from hubserve.worker.model_host import ModelHost, rss_mb, weights_mb
from tests.multimodel.conftest import relabel

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _load(folder: Path) -> object:
    return load_model(folder, "text-classification")


@pytest.fixture
def root(tmp_path: Path, sized_model: Path) -> Path:
    """Four ~45 MB models, a..d, each answering with its own labels."""
    folder = tmp_path / "models"
    folder.mkdir()
    for name in "abcd":
        relabel(sized_model, folder / name, (f"{name}-neg", f"{name}-pos"))
    return folder


def _host(root: Path, models: int) -> tuple[ModelHost, list[str]]:
    """A host whose budget fits ``models`` of the four; the list records each change's loaded set."""
    size = weights_mb(root / "a")
    changes: list[str] = []
    host = ModelHost(root, _load, budget_mb=size * models + 1)
    host.on_change = lambda: changes.append(",".join(host.loaded()))
    return host, changes


def _labels(model: object) -> set[str]:
    answer = model.predict({"inputs": "hello"})  # type: ignore[attr-defined]
    return {item["label"] for item in answer}


def _touch(model: object) -> None:
    """Read every parameter, as traffic over time would: the memory-mapped weights become resident."""
    for parameter in model.predictor.pipe.model.parameters():  # type: ignore[attr-defined]
        float(parameter.detach().float().sum())


async def _use(host: ModelHost, name: str) -> object:
    model = await host.acquire(name)
    host.release(name)
    return model


def test_models_load_on_first_call_and_answer_as_themselves(root: Path) -> None:
    async def scenario() -> None:
        host, _ = _host(root, 2)
        assert host.loaded() == []
        assert _labels(await _use(host, "a")) <= {"a-neg", "a-pos"}
        assert _labels(await _use(host, "b")) <= {"b-neg", "b-pos"}
        assert host.loaded() == ["a", "b"]
        report = {held.name: held for held in host.report().held}
        assert report["a"].misses == 1 and report["a"].hits == 0 and report["a"].loads == 1
        await _use(host, "a")
        report = {held.name: held for held in host.report().held}
        assert report["a"].hits == 1 and report["a"].load_s > 0

    asyncio.run(scenario())


def test_concurrent_requests_for_a_cold_model_share_one_load(root: Path) -> None:
    async def scenario() -> None:
        host, _ = _host(root, 2)
        models = await asyncio.gather(*(host.acquire("c") for _ in range(5)))
        assert all(model is models[0] for model in models)
        held = next(held for held in host.report().held if held.name == "c")
        assert held.loads == 1 and held.misses == 5

    asyncio.run(scenario())


def test_least_recently_used_idle_model_is_unloaded_first_one_at_a_time(root: Path) -> None:
    async def scenario() -> None:
        host, _ = _host(root, 2)
        await _use(host, "a")
        await _use(host, "b")
        await _use(host, "a")  # b is now the least recently used
        await _use(host, "c")
        assert host.loaded() == ["a", "c"]
        await _use(host, "d")  # a is now the oldest
        assert host.loaded() == ["c", "d"]
        unloads = {held.name: held.unloads for held in host.report().held}
        assert unloads == {"a": 1, "b": 1, "c": 0, "d": 0}
        assert host.used_mb <= host.budget_mb

    asyncio.run(scenario())


def test_a_model_with_requests_in_flight_is_never_unloaded(root: Path) -> None:
    async def scenario() -> None:
        host, _ = _host(root, 1)
        busy = await host.acquire("a")  # a request for a is running
        waiting = asyncio.ensure_future(host.acquire("b"))
        await asyncio.sleep(0.5)
        assert not waiting.done(), "b must wait: the only loaded model has a request in flight"
        assert host.loaded() == ["a"]
        assert _labels(busy) <= {"a-neg", "a-pos"}  # still usable
        host.release("a")
        model_b = await asyncio.wait_for(waiting, 60)
        assert _labels(model_b) <= {"b-neg", "b-pos"}
        assert host.loaded() == ["b"]

    asyncio.run(scenario())


def test_unloading_returns_the_memory(root: Path) -> None:
    async def scenario() -> None:
        host, _ = _host(root, 1)
        await _use(host, "a")  # the first load pays for lazy imports and caches: measure from here
        assert host.unload("a")
        before = rss_mb()
        _touch(await _use(host, "b"))  # traffic reads every weight: all of its pages are resident
        loaded = rss_mb()
        size = weights_mb(root / "b")
        assert loaded - before > size * 0.6, f"loading a {size:.0f} MB model grew the process only {loaded - before:.0f} MB"
        assert host.unload("b")
        after = rss_mb()
        assert after - before < size * 0.3, (
            f"unloading did not return the memory: {before:.0f} MB before the load, {loaded:.0f} loaded, {after:.0f} after"
        )

    asyncio.run(scenario())


def test_models_added_and_removed_live(root: Path) -> None:
    async def scenario() -> None:
        host, _ = _host(root, 2)
        with pytest.raises(TargetModelNotFound):
            await host.acquire("e")
        shutil.copytree(root / "a", root / "e")
        await _use(host, "e")
        assert "e" in host.loaded()
        shutil.rmtree(root / "e")
        with pytest.raises(TargetModelNotFound):
            await host.acquire("e")
        assert "e" not in host.loaded()

    asyncio.run(scenario())


def test_names_that_are_paths_are_refused(root: Path) -> None:
    async def scenario() -> None:
        host, _ = _host(root, 2)
        for name in ("../a", "a/../b", "..", "/etc", ""):
            with pytest.raises(ValidationError):
                await host.acquire(name)
        assert _labels(await _use(host, "a.tar.gz")) <= {"a-neg", "a-pos"}  # SageMaker's archive names find the folder

    asyncio.run(scenario())


def test_a_model_larger_than_the_budget_is_refused_with_what_to_change(root: Path) -> None:
    async def scenario() -> None:
        host = ModelHost(root, _load, budget_mb=weights_mb(root / "a") / 2)
        with pytest.raises(ModelError, match="models_memory_mb"):
            await host.acquire("a")

    asyncio.run(scenario())


def test_a_model_that_fails_to_load_fails_its_requests_and_not_the_host(root: Path) -> None:
    async def scenario() -> None:
        host, _ = _host(root, 2)
        (root / "a" / "model.safetensors").write_bytes(b"not safetensors")
        with pytest.raises(ModelError, match="failed to load"):
            await host.acquire("a")
        assert _labels(await _use(host, "b")) <= {"b-neg", "b-pos"}
        assert host.used_mb == pytest.approx(weights_mb(root / "b"), rel=0.5)

    asyncio.run(scenario())
