"""A registry group as a multi-model endpoint's folder: each Approved version is a model, named by its number.

A multi-model endpoint whose source is ``registry://GROUP`` (no version) serves every Approved
folder version of the group: ``TargetModel: "3"`` is version 3. The replica sees an ordinary
folder of model folders, ``<home>/registry/groups/<group>/<N>``, each a link to the version's
content-addressed files, verified against their hash when the link is made. Control keeps the
links in step with the registry (at deploy and whenever a version's approval changes), so
approving a version makes it servable without a redeploy and rejecting or deleting one stops it.
"""

from __future__ import annotations

import os
from pathlib import Path

from hubserve.store import artifacts
from hubserve.store import registry as model_registry


def group_of(source: str) -> str | None:
    """``registry://GROUP`` -> GROUP; None for anything else (a version reference included)."""
    if not source.startswith(model_registry.SCHEME):
        return None
    rest = source.removeprefix(model_registry.SCHEME)
    if "/" in rest or not model_registry.GROUP_NAME.fullmatch(rest):
        return None
    return rest


def group_folder(registry_root: Path, group: str) -> Path:
    return registry_root / "groups" / group


def sync(registry: model_registry.RegistryStore, registry_root: Path, group: str) -> Path:
    """Make ``groups/<group>`` hold a link per Approved folder version, and nothing else; returns the folder."""
    folder = group_folder(registry_root, group)
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {
        str(version.number): version for version in registry.versions(group)
        if version.approval == model_registry.APPROVED and version.source_kind == "folder" and version.sha256
    }  # fmt: skip
    for entry in os.scandir(folder):
        if entry.name not in wanted and entry.is_symlink():
            os.unlink(entry.path)
    for name, version in wanted.items():
        link = folder / name
        if link.is_symlink():
            continue
        assert version.sha256 is not None
        target = artifacts.verified(registry_root, version.sha256, version.uri)  # refused if its files changed
        staging = folder / f".{name}.link"
        staging.unlink(missing_ok=True)
        os.symlink(target, staging)
        os.replace(staging, link)
    return folder
