# The ledger as landed before migrations (revision 0001: tables from create_all), kept to test upgrades.
"""The allocation ledger: reservations and audit events in a SQL database (SQLAlchemy).

`Ledger.reserve` is atomic: in ONE transaction it locks the accounts that may
pay, reads what they hold, asks `policy.decide`, and records either the
reservation and a `reserve` event or a `deny` event. Two spawns racing for the
last slot of an account are serialised by that lock, so only one gets it.

* SQLite (default, `sqlite:///scip-allocations.sqlite`): every transaction
  starts with `BEGIN IMMEDIATE`, which takes the database's write lock at once;
  concurrent writers (threads or processes) wait for it (busy timeout) instead
  of deciding on stale reads.
* PostgreSQL (`postgresql+psycopg://user@host/db`): one row per account in
  `scip_allocation_accounts` is locked with `SELECT ... FOR UPDATE` (in key
  order, so two transactions never deadlock); reads after the lock see the
  other transaction's committed reservation.

Times are naive UTC datetimes. Tables: `scip_reservations`, `scip_allocation_events`,
`scip_allocation_accounts`; created on first use.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from sqlalchemy import DateTime, Float, Index, Integer, String, Text, create_engine, event, or_, select
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool

from scip_jupyter.allocations.policy import Account, Decision, Holding, Request, decide
from scip_jupyter.allocations.quotas import Unlisted

DEFAULT_URL = "sqlite:///scip-allocations.sqlite"
#: Seconds a SQLite writer waits for another's lock before failing.
SQLITE_BUSY_TIMEOUT = 60


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Reservation(Base):
    """One server holding (or having held) an allocation."""

    __tablename__ = "scip_reservations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user: Mapped[str] = mapped_column(String(255))
    server: Mapped[str] = mapped_column(String(255), default="")
    profile: Mapped[str] = mapped_column(String(64))
    account: Mapped[str] = mapped_column(String(128))
    flavour: Mapped[str | None] = mapped_column(String(64), nullable=True)
    units: Mapped[int] = mapped_column(Integer, default=0)
    gpu_weight: Mapped[float] = mapped_column(Float, default=0.0)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    released_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    __table_args__ = (
        Index("ix_scip_reservations_account", "account", "released_at"),
        Index("ix_scip_reservations_server", "user", "server", "released_at"),
    )

    def holding(self) -> Holding:
        return Holding(self.user, self.server, self.account, self.flavour, self.units, self.gpu_weight,
                       self.started_at, self.released_at)


class Event(Base):
    """Audit trail: who asked for what, when, and what the ledger did (reserve, release, deny)."""

    __tablename__ = "scip_allocation_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    user: Mapped[str] = mapped_column(String(255), index=True)
    server: Mapped[str] = mapped_column(String(255), default="")
    profile: Mapped[str] = mapped_column(String(64))
    account: Mapped[str] = mapped_column(String(128), default="")
    flavour: Mapped[str | None] = mapped_column(String(64), nullable=True)
    units: Mapped[int] = mapped_column(Integer, default=0)
    reservation_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")


class AccountLock(Base):
    """One row per paying account: what `reserve` locks (FOR UPDATE) before deciding."""

    __tablename__ = "scip_allocation_accounts"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)


@dataclass(frozen=True)
class EventRecord:
    """An audit event as plain data (what tests, the CLI and widgets read)."""

    at: dt.datetime
    kind: str
    user: str
    server: str
    profile: str
    account: str
    flavour: str | None
    units: int
    reservation_id: int | None
    message: str


def make_engine(url: str, immediate: bool = True) -> Engine:
    """An engine for the ledger; SQLite gets a busy timeout and (`immediate`) BEGIN IMMEDIATE transactions.

    Readers (the spawn form, the audit) use `immediate=False`: they share the
    database with each other and never hold the write lock.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    kwargs: dict = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT, "check_same_thread": False}}
    if parsed.database in (None, "", ":memory:"):
        kwargs["poolclass"] = StaticPool  # one in-memory database shared by the engine
    engine = create_engine(parsed, **kwargs)

    @event.listens_for(engine, "connect")
    def _no_implicit_transactions(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" below start transactions, not the sqlite3 module.
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Ledger:
    """Reservations and audit events; thread-safe (one session per call)."""

    def __init__(self, url: str = DEFAULT_URL, clock: Callable[[], dt.datetime] = utcnow):
        self.url = url
        self.clock = clock
        self.engine = make_engine(url)
        Base.metadata.create_all(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        parsed = make_url(url)
        sqlite_file = parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:")
        self._read_engine = make_engine(url, immediate=False) if sqlite_file else self.engine
        self._read = sessionmaker(self._read_engine, expire_on_commit=False)

    # --- writing -----------------------------------------------------------------------------------

    def reserve(self, request: Request, accounts: Sequence[Account], unlisted: Unlisted = Unlisted.allow) -> Decision:
        """Decide and record in one transaction; returns the decision (denied: nothing reserved)."""
        keys = sorted({a.key for a in accounts})
        self._ensure_accounts(keys)
        now = self.clock()
        with self._session.begin() as session:
            if keys:
                locked = select(AccountLock).where(AccountLock.key.in_(keys)).order_by(AccountLock.key)
                session.execute(locked.with_for_update()).all()
            # A new start of this server replaces whatever it held before (a start that
            # failed without a stop, a hub that died): that holding is over.
            self._release(session, request.user, request.server, now, "superseded: the server is starting again")
            since = min((a.window[0] for a in accounts), default=now)
            holdings = self._holdings(session, keys, since)
            decision = decide(request, accounts, holdings, now, unlisted)
            reservation_id = None
            if decision.allowed:
                row = Reservation(
                    user=request.user, server=request.server, profile=request.profile, account=decision.account_key,
                    flavour=request.flavour, units=request.units, gpu_weight=request.gpu_weight, started_at=now,
                )
                session.add(row)
                session.flush()
                reservation_id = row.id
            session.add(
                Event(
                    at=now, kind="reserve" if decision.allowed else "deny", user=request.user, server=request.server,
                    profile=request.profile, account=decision.account_key, flavour=request.flavour,
                    units=request.units, reservation_id=reservation_id, message=decision.message,
                )
            )
        return decision

    def release(self, user: str, server: str = "", reason: str = "stopped") -> list[int]:
        """End what (user, server) holds; returns the ids released (none: nothing was held)."""
        with self._session.begin() as session:
            return self._release(session, user, server, self.clock(), reason)

    def release_stale(
        self, running: Iterable[tuple[str, str]], started_before: dt.datetime, reason: str = "server not running"
    ) -> list[int]:
        """End every holding that started before `started_before` whose (user, server) is not in `running`.

        `running` is a snapshot taken at `started_before`: a holding that started
        later belongs to a spawn the snapshot could not see, and is kept.
        """
        running = set(running)
        now = self.clock()
        with self._session.begin() as session:
            query = select(Reservation).where(
                Reservation.released_at.is_(None), Reservation.started_at < started_before
            )
            rows = session.scalars(query).all()
            released = []
            for row in rows:
                if (row.user, row.server) not in running:
                    released.extend(self._release(session, row.user, row.server, now, reason))
            return released

    # --- reading -----------------------------------------------------------------------------------

    def holdings(self, accounts: Sequence[str] | set[str], since: dt.datetime | None = None) -> list[Holding]:
        """Active holdings of these accounts, and past ones that ended after `since`."""
        if not accounts:
            return []
        with self._read.begin() as session:
            return self._holdings(session, sorted(set(accounts)), since or self.clock())

    def active(self) -> list[Holding]:
        with self._read.begin() as session:
            active = select(Reservation).where(Reservation.released_at.is_(None)).order_by(Reservation.id)
            rows = session.scalars(active)
            return [r.holding() for r in rows]

    def events(self, user: str | None = None, kinds: Iterable[str] | None = None) -> list[EventRecord]:
        """Audit events, oldest first, optionally for one user and some kinds."""
        query = select(Event).order_by(Event.id)
        if user is not None:
            query = query.where(Event.user == user)
        if kinds is not None:
            query = query.where(Event.kind.in_(list(kinds)))
        with self._read.begin() as session:
            return [
                EventRecord(e.at, e.kind, e.user, e.server, e.profile, e.account, e.flavour, e.units,
                            e.reservation_id, e.message)
                for e in session.scalars(query)
            ]

    def dispose(self) -> None:
        self.engine.dispose()
        self._read_engine.dispose()

    # --- inside a transaction ----------------------------------------------------------------------

    def _ensure_accounts(self, keys: Sequence[str]) -> None:
        """Create the lock rows of these accounts (idempotent, its own short transaction)."""
        if not keys:
            return
        with self._session.begin() as session:
            known = set(session.scalars(select(AccountLock.key).where(AccountLock.key.in_(keys))))
            missing = [k for k in keys if k not in known]
        for key in missing:
            try:
                with self._session.begin() as session:
                    session.add(AccountLock(key=key))
            except IntegrityError:
                pass  # another process created it first

    @staticmethod
    def _holdings(session: Session, keys: Sequence[str], since: dt.datetime) -> list[Holding]:
        if not keys:
            return []
        query = select(Reservation).where(
            Reservation.account.in_(list(keys)),
            or_(Reservation.released_at.is_(None), Reservation.released_at > since),
        )
        return [r.holding() for r in session.scalars(query)]

    @staticmethod
    def _release(session: Session, user: str, server: str, now: dt.datetime, reason: str) -> list[int]:
        rows = session.scalars(
            select(Reservation).where(
                Reservation.user == user, Reservation.server == server, Reservation.released_at.is_(None)
            )
        ).all()
        for row in rows:
            row.released_at = now
            session.add(
                Event(
                    at=now, kind="release", user=user, server=server, profile=row.profile, account=row.account,
                    flavour=row.flavour, units=row.units, reservation_id=row.id, message=reason,
                )
            )
        return [row.id for row in rows]


_ledgers: dict[str, Ledger] = {}
_ledgers_lock = threading.Lock()


def ledger_for(url: str) -> Ledger:
    """One Ledger (engine, connection pool) per URL in this process."""
    with _ledgers_lock:
        ledger = _ledgers.get(url)
        if ledger is None:
            ledger = _ledgers[url] = Ledger(url)
        return ledger
