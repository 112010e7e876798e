"""Storage: local locations confined to their roots (symlinks and '..' included), schemes, S3 for real."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from s3_server import S3Server

from hubserve.storage import Storage, StorageLocationError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    folder.mkdir()
    return folder


@pytest.fixture
def storage(root: Path) -> Storage:
    return Storage([root])


def test_path_and_file_url_inside_a_root(storage: Storage, root: Path) -> None:
    (root / "in.json").write_text("{}")
    plain = storage.resolve(str(root / "in.json"))
    url = storage.resolve(f"file://{root}/in.json")
    assert plain.path == url.path == str(root.resolve() / "in.json")
    assert plain.exists() and not plain.is_dir() and plain.size() == 2
    assert storage.resolve(str(root)).is_dir()  # the root itself is allowed


@pytest.mark.parametrize(
    ("location", "says"),
    [
        ("/etc/passwd", "outside the allowed storage roots"),
        ("relative/path", "must be an absolute path"),
        ("", "non-empty"),
        ("http://example.com/x", "unsupported location scheme 'http'"),
        ("s3://", "names no bucket"),
        ("s3://bucket/a/../b", "may not contain '..'"),
    ],
)
def test_rejected_locations(storage: Storage, location: str, says: str) -> None:
    with pytest.raises(StorageLocationError, match=says) as caught:
        storage.resolve(location)
    assert caught.value.status == 400


def test_dot_dot_cannot_leave_the_root(storage: Storage, root: Path) -> None:
    with pytest.raises(StorageLocationError, match="outside"):
        storage.resolve(f"{root}/../escaped.txt")


def test_symlink_out_of_the_root_is_refused(storage: Storage, root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("s3cret")
    (root / "link").symlink_to(secret)
    with pytest.raises(StorageLocationError, match="outside"):
        storage.resolve(str(root / "link" / "key"))
    (root / "inner").mkdir()
    (root / "ok").symlink_to(root / "inner")  # a link that stays inside is fine
    assert storage.resolve(str(root / "ok")).path == str((root / "inner").resolve())


def test_second_root_and_child(tmp_path: Path, root: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    storage = Storage([root, other])
    assert storage.default_root.path == str(root.resolve())
    assert storage.resolve(str(other / "x")).path == str(other.resolve() / "x")
    child = storage.default_root.child("async", "ep", "a.out")
    assert child.path == str(root.resolve() / "async" / "ep" / "a.out")
    for bad in ("..", "a/../b", "/abs", ""):
        with pytest.raises(StorageLocationError):
            storage.default_root.child(bad)


def test_local_write_read_list_remove(storage: Storage) -> None:
    target = storage.default_root.child("deep", "er", "file.bin")
    with target.open("wb") as file:  # parent folders are created
        file.write(b"payload")
    with target.open("rb") as file:
        assert file.read() == b"payload"
    assert [loc.path for loc in storage.default_root.child("deep").files()] == [target.path]
    target.remove()
    assert not target.exists()


def test_s3_round_trip(s3_server: S3Server) -> None:
    storage = Storage([Path("/tmp")], s3_endpoint_url=s3_server.endpoint_url)
    prefix = f"s3://{s3_server.bucket}/storage-test-{uuid.uuid4().hex[:8]}"
    location = storage.resolve(f"{prefix}/a/b.json")
    assert location.url == f"{prefix}/a/b.json"
    with location.open("wb") as file:
        file.write(b'{"ok": true}')
    assert location.exists() and location.size() == 12
    body = s3_server.client().get_object(Bucket=s3_server.bucket, Key=location.path.split("/", 1)[1])["Body"].read()
    assert body == b'{"ok": true}'
    with storage.resolve(f"{prefix}/a/b.json/").open("rb") as file:  # a trailing slash is dropped
        assert file.read() == b'{"ok": true}'
    assert [loc.url for loc in storage.resolve(prefix).files()] == [f"{prefix}/a/b.json"]
    location.remove()
    assert not storage.resolve(f"{prefix}/a/b.json").exists()
