"""Turn a model source (local folder or Hub repo id) into a folder on this machine.

Local folders are read only where the spec points (and, when the server sets model roots,
only under them). Hub repos go through huggingface_hub, so HF_HUB_OFFLINE and the shared
cache are honoured, and the result is checked to lie inside that cache.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hubserve.spec import ModelSpec

# Weights we never fetch: pickle-based formats are refused by default.
_IGNORED_HUB_FILES = ["*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.msgpack", "*.ot", "*.onnx", "*.tflite", "*.gguf"]
_MODEL_MARKERS = ("config.json", "modules.json", "handler.py", "code/inference.py")
# A branch, tag or commit as git names them (refs/pr/1 included); '..' and the rest are refused below.
# One model of a multi-model endpoint: an entry of its folder, never a path.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
_REVISION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,254}")


class SourceError(ValueError):
    """The source cannot be used; the message says why and what to change."""


def is_local(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~", "file://"))


def resolve_local(source: str, allowed_roots: list[Path] | None = None) -> Path:
    """A local folder, checked for existence, model files and confinement to allowed roots."""
    raw = source.removeprefix("file://")
    path = Path(raw).expanduser().resolve()
    if allowed_roots:
        roots = [root.expanduser().resolve() for root in allowed_roots]
        if not any(path == root or root in path.parents for root in roots):
            raise SourceError(
                f"model folder '{path}' is outside the allowed model roots ({', '.join(map(str, roots))})"
            )
    try:
        os.listdir(path)
    except PermissionError:  # a replica running as an unprivileged user (worker/sandbox.py)
        raise SourceError(
            f"model folder '{path}' cannot be read by the replica's user (uid {os.getuid()}): make it and its parent "
            "folders readable by that user, or run replicas as the server's user (HUBSERVE_REPLICA_USER='')"
        ) from None
    except OSError:
        pass  # missing or not a folder: said below
    if not path.is_dir():
        raise SourceError(f"model folder '{path}' does not exist or is not a folder")
    if not any((path / marker).exists() for marker in _MODEL_MARKERS):
        raise SourceError(f"'{path}' is not a model folder: it has no config.json (save the model with save_pretrained)")
    if allowed_roots:
        check_links_inside(path, [root.expanduser().resolve() for root in allowed_roots])
    return path


def list_model_folders(root: Path) -> list[str]:
    """The model folders in ``root`` now (a multi-model endpoint's models), by name."""
    try:
        entries = sorted(os.scandir(root), key=lambda entry: entry.name)
    except OSError:
        return []
    return [
        entry.name for entry in entries
        if MODEL_NAME.fullmatch(entry.name) and ".." not in entry.name and entry.is_dir()
        and any(os.path.exists(os.path.join(entry.path, marker)) for marker in _MODEL_MARKERS)
    ]  # fmt: skip


def check_links_inside(folder: Path, roots: list[Path]) -> None:
    """Refuse a model folder holding a symlink (file or folder) whose target lies outside every root.

    The folder itself is checked after resolving; this checks what it holds, so a link to
    /etc/passwd inside an allowed folder cannot be served as a tokenizer file.
    """
    for parent, folders, files in os.walk(folder):
        for name in [*folders, *files]:
            entry = Path(parent) / name
            if not entry.is_symlink():
                continue
            target = entry.resolve()
            if not any(target == root or root in target.parents for root in roots):
                raise SourceError(
                    f"model file '{entry}' links to '{target}', outside the allowed model roots ({', '.join(map(str, roots))})"
                )


def validate_revision(revision: str | None) -> None:
    """A Hub revision must be a branch, tag or commit name: never a path ('../refs/main')."""
    if revision is None:
        return
    if not _REVISION.fullmatch(revision) or ".." in revision or "//" in revision or revision.endswith(("/", ".lock")):
        raise SourceError(f"revision {revision!r} is not a valid branch, tag or commit name")


def validate_hub_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise SourceError(f"'{repo_id}' is neither a local folder (start it with / or ./) nor a valid Hub repo id: {exc}") from None
    if ".." in repo_id.split("/"):
        raise SourceError(f"'{repo_id}' is not a valid Hub repo id")


def resolve_hub(repo_id: str, revision: str | None, cache_dir: Path | None = None, local_only: bool = False) -> Path:
    """Download (or find in the offline cache) a Hub snapshot; never returns a path outside the cache."""
    from huggingface_hub import constants, snapshot_download

    validate_hub_id(repo_id)
    validate_revision(revision)
    try:
        folder = snapshot_download(
            repo_id=repo_id,
            revision=revision,
            cache_dir=str(cache_dir) if cache_dir else None,
            ignore_patterns=_IGNORED_HUB_FILES,
            local_files_only=local_only or constants.HF_HUB_OFFLINE,
        )
    except Exception as exc:  # huggingface_hub raises many types; the message is what matters
        offline = " (offline: HF_HUB_OFFLINE is set and the model is not in the cache)" if constants.HF_HUB_OFFLINE else ""
        raise SourceError(f"could not fetch '{repo_id}'{offline}: {type(exc).__name__}: {exc}") from None
    resolved = Path(folder).resolve()
    cache_root = Path(cache_dir or constants.HF_HUB_CACHE).resolve()
    if cache_root not in resolved.parents:
        raise SourceError(f"'{repo_id}' resolved outside the Hub cache; refusing to read it")
    return resolved


def resolve_source(
    source: str, revision: str | None, *, allowed_roots: list[Path] | None = None, cache_dir: Path | None = None
) -> Path:
    """A local folder or Hub repo id as a folder on this machine (what a replica does with its launch)."""
    if is_local(source):
        return resolve_local(source, allowed_roots)
    return resolve_hub(source, revision, cache_dir)


def resolve(model: ModelSpec, *, allowed_roots: list[Path] | None = None, cache_dir: Path | None = None) -> Path:
    return resolve_source(model.source, model.revision, allowed_roots=allowed_roots, cache_dir=cache_dir)
