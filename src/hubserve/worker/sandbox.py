"""What a replica gives up before it loads a model or runs a handler: the server's user and secrets.

The backend starts every replica (and the zygote) with ``scrubbed_environment``: the server's
own settings (``HUBSERVE_*``) and credentials (tokens, secrets, passwords, AWS keys) stay in the
server; an endpoint that needs one sets it in its own ``env``. When the server runs as root, the
backend also names an unprivileged user (``--run-as``, setting ``replica_user``, default
``nobody``), and the replica calls ``drop_privileges`` right after it is forked or started and
before it imports user code: it keeps only what it had opened (its log) and the files the backend
made its own (its socket folder). The zygote itself stays root so each fork can drop to the user
its endpoint runs as.

This module is on the replica side: it imports nothing from the server.
"""

from __future__ import annotations

import os
import pwd
import re

RUN_AS_FLAG = "--run-as"
# Names the server's environment may hold that a replica must not inherit.
_SECRET_WORDS = frozenset(
    {"TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "CREDENTIALS", "APIKEY", "PASSPHRASE"}
)
_SECRET_NAMES = re.compile(r"^(HUBSERVE_|AWS_SECRET|AWS_SESSION|AWS_SECURITY|AWS_ACCESS_KEY)|API_KEY|PRIVATE_KEY")


class SandboxError(RuntimeError):
    """The replica could not give up its privileges; it must not go on as root."""


def is_secret_name(name: str) -> bool:
    """Whether an environment variable of the server is kept from replicas (a setting or a credential)."""
    upper = name.upper()
    return bool(_SECRET_NAMES.search(upper)) or any(word in _SECRET_WORDS for word in upper.split("_"))


def scrubbed_environment(environ: dict[str, str] | os._Environ[str], endpoint_env: dict[str, str]) -> dict[str, str]:
    """The server's environment less its settings and credentials, plus what the endpoint sets itself."""
    kept = {name: value for name, value in environ.items() if not is_secret_name(name)}
    return {**kept, **endpoint_env}


def take_run_as(argv: list[str]) -> tuple[str | None, list[str]]:
    """Split ``--run-as USER`` off a replica's argv (the replica's own parser does not know it)."""
    if RUN_AS_FLAG not in argv:
        return None, argv
    index = argv.index(RUN_AS_FLAG)
    if index + 1 >= len(argv):
        raise SandboxError(f"{RUN_AS_FLAG} needs a user name")
    return argv[index + 1], argv[:index] + argv[index + 2 :]


def drop_privileges(user: str) -> None:
    """Become ``user`` for good (no supplementary groups, no way back); SandboxError if that fails.

    Done before the model's code is imported, so a handler never runs with the server's rights.
    """
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise SandboxError(f"replica user {user!r} does not exist on this machine") from None
    try:
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
    except OSError as exc:
        raise SandboxError(f"could not switch the replica to user {user!r}: {exc}") from None
    if entry.pw_uid != 0 and (os.getuid() == 0 or os.geteuid() == 0):
        raise SandboxError(f"the replica is still root after switching to {user!r}")
    os.environ["HOME"] = entry.pw_dir if os.access(entry.pw_dir, os.W_OK) else "/tmp"
    os.environ["USER"] = os.environ["LOGNAME"] = user
    os.umask(0o077)
