"""Which user replicas run as when the installed code lies in a folder that user cannot read."""

from __future__ import annotations

import os
import pwd
import tempfile
from pathlib import Path

import pytest

from hubserve.backends import isolation
from hubserve.backends.isolation import ReplicaUserError, choose_replica_user, readable_by

NOBODY = pwd.getpwnam("nobody")


def test_readable_by_follows_every_folder_above() -> None:
    with tempfile.TemporaryDirectory() as name:  # under /tmp: pytest's own temp folders are 0700
        _check_readable_by(Path(name))


def _check_readable_by(base: Path) -> None:
    private = base / "private"
    code = private / "site-packages"
    code.mkdir(parents=True)
    for folder in (base, code):
        folder.chmod(0o755)
    private.chmod(0o700)
    assert not readable_by(code, NOBODY.pw_uid, NOBODY.pw_gid)
    private.chmod(0o711)  # passable, not listable: enough to reach what lies below
    assert readable_by(code, NOBODY.pw_uid, NOBODY.pw_gid)
    code.chmod(0o711)
    assert not readable_by(code, NOBODY.pw_uid, NOBODY.pw_gid)


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root server switches replicas to another user")
def test_the_default_gives_way_with_a_warning_and_a_named_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = tmp_path / "checkout"
    private.mkdir(mode=0o700)
    monkeypatch.setattr(isolation, "code_unreadable_by", lambda ids: private)  # the code as if under a 0700 folder
    user, warning = choose_replica_user(None)
    assert user == "" and warning is not None and str(private) in warning and "--replica-user" in warning
    with pytest.raises(ReplicaUserError, match="cannot read"):
        choose_replica_user("nobody")
    monkeypatch.setattr(isolation, "code_unreadable_by", lambda ids: None)
    assert choose_replica_user(None) == ("nobody", None)
