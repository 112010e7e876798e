"""hubserve.models.sources: local folders, Hub ids, and a real huggingface_hub cache laid out by hand."""

from __future__ import annotations

import shutil
from pathlib import Path

import huggingface_hub.constants
import pytest

from hubserve.models.sources import SourceError, is_local, resolve, resolve_hub, resolve_local, validate_hub_id
from hubserve.spec import ModelSpec
from tests.hub_cache import COMMIT, lay_out_hub_cache

OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read once, at import


@pytest.fixture
def cache(tmp_path: Path, tiny_models: dict[str, Path], offline: None) -> Path:
    """A Hub cache holding org/name at COMMIT (refs main) and OTHER_COMMIT (refs v2)."""
    root = tmp_path / "hub-cache"
    lay_out_hub_cache(root, "org/name", tiny_models["text-classification"])
    lay_out_hub_cache(root, "org/name", tiny_models["text-classification"], OTHER_COMMIT, refs=("v2",))
    (root / "models--org--name" / "snapshots" / OTHER_COMMIT / "marker.txt").write_text("v2")
    return root.resolve()


def model_folder(path: Path, marker: str = "config.json") -> Path:
    (path / marker).parent.mkdir(parents=True, exist_ok=True)
    (path / marker).write_text("{}")
    return path


# --- is_local ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "local"),
    [
        ("/abs/model", True),
        ("./model", True),
        ("../model", True),
        ("~/models/x", True),
        ("~", True),
        ("file:///abs/model", True),
        ("file://./model", True),
        ("org/name", False),
        ("bert-base-uncased", False),
        (".hidden/model", False),
        ("model/", False),
        ("https://huggingface.co/org/name", False),
    ],
)
def test_is_local(source: str, local: bool) -> None:
    assert is_local(source) is local


# --- resolve_local ----------------------------------------------------------------------


def test_a_model_folder_resolves_to_its_absolute_path(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "model")
    assert resolve_local(str(folder)) == folder.resolve()


@pytest.mark.parametrize("marker", ["config.json", "modules.json", "handler.py", "code/inference.py"])
def test_any_model_marker_makes_a_model_folder(tmp_path: Path, marker: str) -> None:
    folder = model_folder(tmp_path / "model", marker)
    assert resolve_local(str(folder)) == folder.resolve()


def test_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist or is not a folder"):
        resolve_local(str(tmp_path / "nowhere"))


def test_a_file_is_not_a_folder(tmp_path: Path) -> None:
    file = tmp_path / "config.json"
    file.write_text("{}")
    with pytest.raises(SourceError, match="does not exist or is not a folder"):
        resolve_local(str(file))


def test_a_folder_without_config_json_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.safetensors").write_bytes(b"")
    with pytest.raises(SourceError, match=r"has no config.json .*save_pretrained"):
        resolve_local(str(tmp_path / "model"))


def test_file_prefix(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "model")
    assert resolve_local(f"file://{folder}") == folder.resolve()


def test_relative_and_home_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = model_folder(tmp_path / "home" / "model")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path / "home")
    assert resolve_local("~/model") == folder.resolve()
    assert resolve_local("./model") == folder.resolve()
    monkeypatch.chdir(tmp_path / "home" / "model")
    assert resolve_local("../model") == folder.resolve()
    assert resolve_local("file://./") == folder.resolve()


def test_allowed_roots(tmp_path: Path) -> None:
    root = tmp_path / "models"
    inside = model_folder(root / "org" / "inside")
    assert resolve_local(str(inside), [root]) == inside.resolve()
    assert resolve_local(str(model_folder(root)), [root]) == root.resolve()  # the root itself
    other_root = tmp_path / "more"
    assert resolve_local(str(inside), [other_root, root]) == inside.resolve()  # any root will do


@pytest.mark.parametrize("outside", ["elsewhere/model", "models-evil/model", "models/../elsewhere/model"])
def test_folders_outside_the_allowed_roots_are_refused(tmp_path: Path, outside: str) -> None:
    root = tmp_path / "models"
    root.mkdir()
    model_folder(tmp_path / "elsewhere" / "model")
    model_folder(tmp_path / "models-evil" / "model")  # shares the root's name as a prefix
    with pytest.raises(SourceError, match="outside the allowed model roots") as excinfo:
        resolve_local(str(tmp_path / outside), [root])
    assert str(root.resolve()) in str(excinfo.value)


def test_a_symlink_escaping_an_allowed_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    secret = model_folder(tmp_path / "secret")
    (root / "innocent").symlink_to(secret, target_is_directory=True)
    with pytest.raises(SourceError, match="outside the allowed model roots"):
        resolve_local(str(root / "innocent"), [root])
    with pytest.raises(SourceError, match="outside the allowed model roots"):
        resolve_local(f"file://{root / 'innocent'}", [root])
    assert resolve_local(str(root / "innocent")) == secret.resolve()  # without roots, links are followed


def test_a_symlink_within_an_allowed_root_is_fine(tmp_path: Path) -> None:
    root = tmp_path / "models"
    real = model_folder(root / "v1")
    (root / "latest").symlink_to(real, target_is_directory=True)
    assert resolve_local(str(root / "latest"), [root]) == real.resolve()


def test_roots_are_checked_before_existence(tmp_path: Path) -> None:
    """A path outside the roots says so, without telling whether it exists."""
    (tmp_path / "models").mkdir()
    with pytest.raises(SourceError, match="outside the allowed model roots"):
        resolve_local(str(tmp_path / "not-there"), [tmp_path / "models"])


# --- validate_hub_id --------------------------------------------------------------------


@pytest.mark.parametrize("repo_id", ["../x", "a/b/c", "", "/abs/path", "/etc", "org/..", "..", "org/../name", "org//name", "a b/c"])
def test_invalid_hub_ids_are_refused(repo_id: str) -> None:
    with pytest.raises(SourceError, match=r"is neither a local folder .* nor a valid Hub repo id"):
        validate_hub_id(repo_id)


@pytest.mark.parametrize("repo_id", ["org/name", "bert-base-uncased", "org/name.v2", "Org-1/name_2"])
def test_valid_hub_ids(repo_id: str) -> None:
    validate_hub_id(repo_id)


# --- resolve_hub against a real cache ---------------------------------------------------


def test_a_cached_repo_resolves_to_its_snapshot(cache: Path) -> None:
    folder = resolve_hub("org/name", None, cache)
    assert folder == cache / "models--org--name" / "snapshots" / COMMIT
    assert folder.is_dir() and (folder / "config.json").is_file()
    assert sorted(path.name for path in folder.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    assert (folder / "config.json").resolve().parent == cache / "models--org--name" / "blobs"
    assert resolve_hub("org/name", "main", cache) == folder


def test_revision_picks_a_ref_or_a_commit(cache: Path) -> None:
    v2 = resolve_hub("org/name", "v2", cache)
    assert v2 == cache / "models--org--name" / "snapshots" / OTHER_COMMIT
    assert (v2 / "marker.txt").read_text() == "v2"
    assert resolve_hub("org/name", OTHER_COMMIT, cache) == v2
    assert resolve_hub("org/name", COMMIT, cache) == cache / "models--org--name" / "snapshots" / COMMIT


def test_resolve_dispatches_on_the_source(cache: Path, tmp_path: Path) -> None:
    hub = ModelSpec(source="org/name", revision="v2", task="text-classification")
    assert resolve(hub, cache_dir=cache).name == OTHER_COMMIT
    local = model_folder(tmp_path / "local")
    assert resolve(ModelSpec(source=str(local)), allowed_roots=[tmp_path], cache_dir=cache) == local.resolve()


def test_the_default_cache_is_huggingface_hubs(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert resolve_hub("org/name", None) == cache / "models--org--name" / "snapshots" / COMMIT


@pytest.mark.parametrize(("repo_id", "revision"), [("org/missing", None), ("org/name", "no-such-branch"), ("org/name", "a" * 40)])
def test_an_uncached_repo_or_revision_says_offline(cache: Path, repo_id: str, revision: str | None) -> None:
    with pytest.raises(SourceError) as excinfo:
        resolve_hub(repo_id, revision, cache)
    message = str(excinfo.value)
    assert message.startswith(f"could not fetch '{repo_id}'")
    assert "offline" in message and "HF_HUB_OFFLINE" in message and "not in the cache" in message


def test_local_only_does_not_claim_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    (tmp_path / "empty-cache").mkdir()
    with pytest.raises(SourceError) as excinfo:
        resolve_hub("org/missing", None, tmp_path / "empty-cache", local_only=True)
    assert "could not fetch 'org/missing'" in str(excinfo.value) and "offline" not in str(excinfo.value)


def test_an_invalid_id_is_refused_before_the_cache_is_read(cache: Path) -> None:
    with pytest.raises(SourceError, match=r"is neither a local folder .* nor a valid Hub repo id"):
        resolve_hub("../../etc", None, cache)


def test_a_snapshot_linking_outside_the_cache_is_refused(tmp_path: Path, tiny_models: dict[str, Path], offline: None) -> None:
    cache = tmp_path / "hub-cache"
    outside = shutil.copytree(tiny_models["text-classification"], tmp_path / "outside")
    repo = cache / "models--org--evil"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    (repo / "snapshots").mkdir()
    (repo / "snapshots" / COMMIT).symlink_to(outside, target_is_directory=True)
    with pytest.raises(SourceError, match="resolved outside the Hub cache; refusing"):
        resolve_hub("org/evil", None, cache)


def test_a_ref_pointing_outside_the_cache_is_refused(cache: Path, tmp_path: Path) -> None:
    model_folder(tmp_path / "outside")
    (cache / "models--org--name" / "refs" / "sneaky").write_text("../../../outside")
    with pytest.raises(SourceError, match="resolved outside the Hub cache"):
        resolve_hub("org/name", "sneaky", cache)
