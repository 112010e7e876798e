"""Which server reconciles an endpoint: a lease ``endpoint/<name>`` in the store, one holder at a time.

Several servers on one store each reconcile only the endpoints whose lease they hold. A user
operation on this server takes the lease inline (one short statement, so answers gain no waiting);
one task per server renews every held lease and, every few seconds, scans the store for endpoints
nobody holds (their holder died, or they were created through another server) and takes them.
A lease that fails to renew is lost: control stops its replicas, since another server now runs
them. A clean stop releases every lease, so another server takes them at its next scan rather
than after the lease lapses. A single server takes every lease at once and behaves as before.

Each server also records the URL other servers reach it at (store/servers.py), at start and with
every renewal round, so a server that receives an invocation of an endpoint held elsewhere can
forward it to the holder (``where``; api/forwarding.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import socket
from collections.abc import Callable, Iterable
from pathlib import Path

from hubserve.store.leases import LeaseStore
from hubserve.store.servers import ServerStore

log = logging.getLogger("hubserve.control")

LEASE_TTL_S = 15.0  # an endpoint whose holder died is taken over this long after its last renewal
RENEW_S = 4.0  # renewals and scans, well inside the TTL so one slow round does not lose a lease
PREFIX = "endpoint/"


def server_id(home: Path) -> str:
    """This server's holder id, kept in its home so that a restart (even after a kill) holds its leases at once."""
    path = home / "server-id"
    try:
        return path.read_text().strip() or _new_id(path)
    except FileNotFoundError:
        return _new_id(path)


def _new_id(path: Path) -> str:
    ident = f"{socket.gethostname()}-{secrets.token_hex(4)}"[-64:]
    path.write_text(ident + "\n")
    return ident


@dataclasses.dataclass(frozen=True)
class Holder:
    """Another live server that holds an endpoint, and the URL it advertised (None: it never did)."""

    server: str
    url: str | None


class Ownership:
    """The endpoint leases this server holds; ``leases`` None: a lone server that holds everything."""

    def __init__(
        self, leases: LeaseStore | None, holder: str, ttl_s: float = LEASE_TTL_S, renew_s: float = RENEW_S,
        servers: ServerStore | None = None, url: str | None = None,
    ) -> None:  # fmt: skip
        """``servers`` and ``url``: where this server records the URL it is reached at (with shared leases)."""
        self._leases = leases
        self.holder = holder
        self._ttl_s = ttl_s
        self.renew_s = renew_s
        self.held: set[str] = set()
        self._servers = servers
        self.url = url

    def advertise(self) -> None:
        """Record (refresh) this server's URL next to its id, for the servers that forward to it."""
        if self._leases is not None and self._servers is not None and self.url is not None:
            self._servers.advertise(self.holder, self.url)

    def take(self, name: str) -> bool:
        """Hold ``name`` now (free, lapsed or ours already); False when another live server holds it."""
        if self._leases is None:
            return True
        if self._leases.take(PREFIX + name, self.holder, self._ttl_s):
            self.held.add(name)
            return True
        return False

    @property
    def shared(self) -> bool:
        """Other servers may share the store (leases in use)."""
        return self._leases is not None

    def holds(self, name: str) -> bool:
        return self._leases is None or name in self.held

    def holder_of(self, name: str) -> str | None:
        """The server that reconciles ``name`` now (None: nobody, until some server's next scan)."""
        if self._leases is None:
            return self.holder
        lease = self._leases.get(PREFIX + name)
        return lease.holder if lease is not None else None

    def where(self, name: str) -> Holder | None:
        """The other live server that holds ``name``; None when this one does, nobody does, or no lease is in use."""
        if self._leases is None:
            return None
        lease = self._leases.get(PREFIX + name)
        if lease is None or lease.holder == self.holder:
            return None
        url = self._servers.url_of(lease.holder) if self._servers is not None else None
        return Holder(server=lease.holder, url=url)

    def release(self, name: str) -> None:
        """Give ``name`` up at once (deleted here, or a clean stop)."""
        self.held.discard(name)
        if self._leases is not None:
            self._leases.release(PREFIX + name, self.holder)

    def release_all(self) -> None:
        for name in list(self.held):
            try:
                self.release(name)
            except Exception:  # the store briefly away at shutdown: the leases lapse instead
                log.exception("releasing the lease of %s failed", name)

    def renew(self) -> list[str]:
        """Extend every held lease; returns the names whose lease is no longer ours (lost)."""
        if self._leases is None:
            return []
        lost = [name for name in sorted(self.held) if not self._leases.renew(PREFIX + name, self.holder, self._ttl_s)]
        self.held.difference_update(lost)
        return lost

    def take_free(self, names: Iterable[str]) -> list[str]:
        """Of ``names`` (the stored endpoints), take those no live server holds; returns the ones taken."""
        if self._leases is None:
            return []
        live = {lease.name.removeprefix(PREFIX) for lease in self._leases.held(PREFIX)}
        return [name for name in names if name not in self.held and name not in live and self.take(name)]

    async def run_forever(self, names: Callable[[], list[str]], gained: Callable[[str], None],
                          lost: Callable[[str], None], kick_held: Callable[[], None]) -> None:  # fmt: skip
        """Renew, hand lost endpoints to ``lost``, take free ones for ``gained``; every ``renew_s``."""
        if self._leases is None:
            return
        while True:
            await asyncio.sleep(self.renew_s)
            try:
                self.advertise()
                for name in self.renew():
                    log.warning("lost the lease of endpoint %s: another server runs it now", name)
                    lost(name)
                for name in self.take_free(names()):
                    log.info("took over endpoint %s", name)
                    gained(name)
                kick_held()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database briefly away must not end renewals
                log.exception("endpoint lease round failed")
