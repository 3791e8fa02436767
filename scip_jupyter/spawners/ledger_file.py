"""A SQLite ledger whose file went away: refuse, never write to a ghost.

SQLite connections in the pool keep the file they opened, also once it is removed
(or replaced by a restored copy): reservations would go on into an unlinked file
and vanish at the next restart. Before each reservation the spawner checks that
the file at the ledger's path is the one its connections use:

* missing: raise (the spawn fails with the mixin's 503, nothing reserved); the
  hub's other people keep their running servers;
* back (the same file moved back, or a restored copy): a different file is
  met by fresh connections (the pool is disposed), so the next spawn works
  without a restart.

PostgreSQL needs none of this (`pool_pre_ping` reconnects once the server is back).
See docs/allocations.md, "When the ledger is gone".
"""

from __future__ import annotations

import os

from sqlalchemy.engine import make_url

from ..allocations.ledger import Ledger

_seen: dict[str, tuple[int, int]] = {}


class LedgerFileMissing(FileNotFoundError):
    pass


def check_ledger_file(ledger: Ledger) -> None:
    """Raise LedgerFileMissing when the SQLite file is gone; drop stale connections when it was replaced."""
    url = make_url(ledger.url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return
    try:
        st = os.stat(url.database)
    except FileNotFoundError:
        raise LedgerFileMissing(f"the ledger file {url.database} is missing") from None
    ident = (st.st_dev, st.st_ino)
    before = _seen.setdefault(ledger.url, ident)
    if before != ident:  # a copy put back: connections of the old file must not write on
        for engine in {ledger.engine, getattr(ledger, "_read_engine", ledger.engine)}:
            engine.dispose()
        _seen[ledger.url] = ident
