"""Who can reach the server: a server without a token listens on loopback only.

With no token configured every route answers anyone who reaches the port, so ``hubserve serve``
refuses a non-loopback bind unless the operator says ``--insecure-no-auth`` on purpose.
"""

from __future__ import annotations

import ipaddress

from hubserve.settings import Settings


class UnsafeBind(ValueError):
    """A non-loopback bind without a token; the message says what to do instead."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable from this machine only."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def check_bind(settings: Settings) -> str:
    """The start-up line saying who can reach the server; raises UnsafeBind when it must not start."""
    if settings.token:
        return f"listening on {settings.host}:{settings.port}; every route except the public ones needs a token"
    if is_loopback(settings.host):
        return (
            f"no token configured: listening on loopback only ({settings.host}:{settings.port}); "
            "give --token-file (or HUBSERVE_TOKEN) to accept connections from other machines"
        )
    if not settings.insecure_no_auth:
        raise UnsafeBind(
            f"refusing to listen on {settings.host} without a token: anyone who reaches it could deploy code and "
            "read every endpoint. Give a token (--token-file PATH or HUBSERVE_TOKEN), bind 127.0.0.1, or pass "
            "--insecure-no-auth if that is really what you want."
        )
    return (
        f"INSECURE: listening on {settings.host}:{settings.port} with no token (--insecure-no-auth): "
        "anyone who reaches this port has full control of the server"
    )
