"""Model folders sent to Ray nodes: keyed by content, written whole or not at all (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the Ray backend needs ray installed")

from hubserve.backends.ray import models


def _folder(root: Path, weights: bytes) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "config.json").write_text("{}")
    (root / "sub" / "weights.bin").write_bytes(weights)
    return root


def test_the_hash_follows_the_content_not_the_place(tmp_path: Path) -> None:
    one = _folder(tmp_path / "one", b"abc")
    two = _folder(tmp_path / "two", b"abc")
    assert models.content_hash(one) == models.content_hash(two)
    (two / "sub" / "weights.bin").write_bytes(b"abd")
    assert models.content_hash(one) != models.content_hash(two)


def test_unpack_writes_the_files_once(tmp_path: Path) -> None:
    source = _folder(tmp_path / "source", b"\x00" * 1000)
    key = models.content_hash(source)
    copy = models.unpack(models.pack(source), tmp_path / "cache", key)
    assert copy == tmp_path / "cache" / key
    assert (copy / "sub" / "weights.bin").read_bytes() == b"\x00" * 1000
    assert models.unpack({}, tmp_path / "cache", key) == copy  # already there: nothing is written
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [key]  # no partial folder left


def test_a_path_that_leaves_the_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cache").mkdir()
    with pytest.raises(ValueError, match="leaves its folder"):
        models.unpack({"../escape.txt": b"x"}, tmp_path / "cache", "k")
