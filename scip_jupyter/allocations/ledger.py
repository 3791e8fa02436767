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
`scip_allocation_accounts`, `scip_slurm_usage`, and GPU culling's `scip_gpu_culls` and
`scip_gpu_notices` (models in `culling/records.py`); created and upgraded on first use
by the Alembic migrations in `migrations/` (`migrate`, which `Ledger` and culling's
`Records` both call), under a lock so that replicas starting together migrate once.

Hub replicas may share one ledger: each reservation records the hub that made it
(`hub_id`, from `$SCIP_HUB_ID`), and a hub's stale-holding sweep releases only its
own holdings (and unowned ones from before holdings had a hub).

Slurm jobs our servers submitted are recorded from Slurm's own accounting
(`record_slurm_jobs`, fed by `usage_sacct.SacctReconciler`): one row per job or
array task keyed by (cluster, job id), so re-reading sacct updates rows and never
counts a job twice. Their GPU-hours count against the account's `gpu_hours`
alongside notebook servers' (not against `max_gpus`: Slurm's GrpTRES holds those).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from sqlalchemy import (
    DateTime, Float, Index, Integer, String, Text, UniqueConstraint, create_engine, event, inspect, or_, select, text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool

from .policy import Account, Decision, Holding, Request, decide
from .quotas import Unlisted

DEFAULT_URL = "sqlite:///scip-allocations.sqlite"
#: Seconds a SQLite writer waits for another's lock before failing.
SQLITE_BUSY_TIMEOUT = 60
#: Environment variable naming this hub among replicas that share a ledger.
HUB_ID_ENV = "SCIP_HUB_ID"
#: The revision `migrate` brings a database to (migrations/versions/).
HEAD_REVISION = "0003"
#: The revision of a database whose tables `create_all` made before migrations existed.
FIRST_REVISION = "0001"
#: PostgreSQL advisory lock key held while migrating (one migration at a time).
_MIGRATION_LOCK = 0x5C1B_A110


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
    hub: Mapped[str] = mapped_column(String(128), default="", server_default="")

    __table_args__ = (
        Index("ix_scip_reservations_account", "account", "released_at"),
        Index("ix_scip_reservations_server", "user", "server", "released_at"),
        Index("ix_scip_reservations_hub", "hub", "released_at"),
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


class SlurmUsage(Base):
    """One Slurm job (or array task) our servers submitted, as Slurm's accounting reports it."""

    __tablename__ = "scip_slurm_usage"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(String(64))  # "<job>" or "<array job>_<task>"
    user: Mapped[str] = mapped_column(String(255))  # the hub user (job tags), else the Slurm user
    server: Mapped[str] = mapped_column(String(255), default="", server_default="")
    slurm_user: Mapped[str] = mapped_column(String(255), default="", server_default="")
    slurm_account: Mapped[str] = mapped_column(String(128), default="", server_default="")
    account: Mapped[str] = mapped_column(String(128), default="", server_default="")  # ledger key, "" unmetered
    flavour: Mapped[str | None] = mapped_column(String(64), nullable=True)
    gpus: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    gpu_weight: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")  # GPU-hours per hour
    state: Mapped[str] = mapped_column(String(32), default="", server_default="")
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("cluster", "job_id", name="uq_scip_slurm_usage_job"),
        Index("ix_scip_slurm_usage_account", "account", "ended_at"),
        Index("ix_scip_slurm_usage_started", "started_at"),
    )

    def holding(self, now: dt.datetime) -> Holding:
        # Never "active" for the policy: Slurm's GrpTRES limits concurrent GPUs of jobs.
        return Holding(self.user, f"slurm:{self.cluster}:{self.job_id}", self.account, self.flavour, self.gpus,
                       self.gpu_weight, self.started_at or now, min(self.ended_at or now, now))


@dataclass(frozen=True)
class SlurmJobRecord:
    """One job as read from sacct, ready for the ledger (`Ledger.record_slurm_jobs`)."""

    cluster: str
    job_id: str
    user: str
    server: str
    slurm_user: str
    slurm_account: str
    account: str
    flavour: str | None
    gpus: int
    gpu_weight: float
    state: str
    started_at: dt.datetime | None
    ended_at: dt.datetime | None


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


def default_hub_id() -> str:
    """This hub's name among replicas sharing a ledger: `$SCIP_HUB_ID`, else "" (a single hub)."""
    return os.environ.get(HUB_ID_ENV, "")


def migrate(engine: Engine) -> str:
    """Bring the ledger's tables to HEAD_REVISION (Alembic); returns the revision it found.

    Runs in one transaction under the database's write lock (SQLite: BEGIN
    IMMEDIATE; PostgreSQL: an advisory lock), so processes starting together
    migrate once. Tables made before migrations existed are stamped 0001 first.
    """
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as probe:
        tables = set(inspect(probe).get_table_names())
        if "alembic_version" in tables and MigrationContext.configure(probe).get_current_revision() == HEAD_REVISION:
            return HEAD_REVISION
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        found = MigrationContext.configure(connection).get_current_revision()
        config.attributes["connection"] = connection
        if found is None and "scip_reservations" in set(inspect(connection).get_table_names()):
            command.stamp(config, FIRST_REVISION)  # made by create_all before migrations existed
            found = FIRST_REVISION
        if found != HEAD_REVISION:
            command.upgrade(config, "head")
    return found or "empty"


#: libpq settings of PostgreSQL connections: a server that does not answer (gone from the network,
#: not merely stopped) fails the caller within `connect_timeout` seconds, and a connection whose
#: server went silent is found dead by TCP keepalives, instead of either waiting forever.
PG_CONNECT_ARGS = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                   "keepalives_count": 3}


def _connect_args(parsed) -> dict:
    """PG_CONNECT_ARGS for the libpq drivers, minus what the URL itself sets (pure).

    >>> _connect_args(make_url("postgresql+psycopg://scip@db/scip?connect_timeout=3"))["connect_timeout"]
    Traceback (most recent call last):
    KeyError: 'connect_timeout'
    >>> _connect_args(make_url("postgresql+psycopg://scip@db/scip"))["connect_timeout"]
    10
    >>> _connect_args(make_url("postgresql+pg8000://scip@db/scip"))
    {}
    """
    if parsed.get_backend_name() != "postgresql" or parsed.get_driver_name() not in ("psycopg", "psycopg2"):
        return {}
    return {k: v for k, v in PG_CONNECT_ARGS.items() if k not in parsed.query}


def unavailable_reason(exc: BaseException) -> str:
    """Why the ledger cannot be used now, in words a person reads: never its URL, host or password.

    >>> unavailable_reason(FileNotFoundError("the ledger file /srv/a.sqlite is missing"))
    'its file is missing'
    >>> from sqlalchemy.exc import OperationalError
    >>> unavailable_reason(OperationalError("SELECT 1", {}, Exception("connection refused")))
    'its database does not answer or is busy'
    """
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from ..i18n import _

    if isinstance(exc, FileNotFoundError):
        return _("its file is missing")
    if isinstance(exc, (DBAPIError, PoolTimeout, ConnectionError, TimeoutError)):
        return _("its database does not answer or is busy")
    return _("it failed with {error}").format(error=type(exc).__name__)


def make_engine(url: str, immediate: bool = True) -> Engine:
    """An engine for the ledger; SQLite gets a busy timeout and (`immediate`) BEGIN IMMEDIATE transactions.

    Readers (the spawn form, the audit) use `immediate=False`: they share the
    database with each other and never hold the write lock.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # A stopped or restarted server drops every pooled connection: `pool_pre_ping` tests each
        # one at checkout and replaces the dead ones, so the first use once the server is back
        # works, without a restart of the hub.
        return create_engine(parsed, pool_pre_ping=True, connect_args=_connect_args(parsed))
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

    def __init__(self, url: str = DEFAULT_URL, clock: Callable[[], dt.datetime] = utcnow, hub_id: str | None = None):
        self.url = url
        self.clock = clock
        self.hub_id = default_hub_id() if hub_id is None else hub_id
        self.engine = make_engine(url)
        migrate(self.engine)
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
                    hub=self.hub_id,
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
        """End every holding of this hub that started before `started_before` whose (user, server) is not in `running`.

        `running` is a snapshot taken at `started_before`: a holding that started
        later belongs to a spawn the snapshot could not see, and is kept. Only this
        hub's holdings (`hub_id`) and unowned ones (hub "") are looked at: another
        replica's servers are not in this hub's snapshot, and are not released.
        """
        running = set(running)
        now = self.clock()
        with self._session.begin() as session:
            query = select(Reservation).where(
                Reservation.released_at.is_(None), Reservation.started_at < started_before,
                Reservation.hub.in_(sorted({self.hub_id, ""})),
            )
            rows = session.scalars(query).all()
            return self._release_rows(session, [r for r in rows if (r.user, r.server) not in running], now, reason)

    def record_slurm_jobs(self, records: Iterable[SlurmJobRecord]) -> tuple[int, int]:
        """Insert or update Slurm jobs by (cluster, job id); returns (new, updated). Idempotent."""
        records = list(records)
        if not records:
            return 0, 0
        now = self.clock()
        new = updated = 0
        with self._session.begin() as session:
            for chunk_start in range(0, len(records), 500):
                chunk = records[chunk_start:chunk_start + 500]
                by_key = {(r.cluster, r.job_id): r for r in chunk}
                clusters = sorted({k[0] for k in by_key})
                existing = {
                    (row.cluster, row.job_id): row
                    for row in session.scalars(
                        select(SlurmUsage).where(
                            SlurmUsage.cluster.in_(clusters), SlurmUsage.job_id.in_(sorted({k[1] for k in by_key}))
                        )
                    )
                }
                for key, r in by_key.items():
                    row = existing.get(key)
                    if row is None:
                        row = SlurmUsage(cluster=r.cluster, job_id=r.job_id)
                        session.add(row)
                        new += 1
                    else:
                        updated += 1
                    for name in ("user", "server", "slurm_user", "slurm_account", "account", "flavour", "gpus",
                                 "gpu_weight", "state", "started_at", "ended_at"):
                        setattr(row, name, getattr(r, name))
                    row.updated_at = now
        return new, updated

    # --- reading -----------------------------------------------------------------------------------

    def holdings(self, accounts: Sequence[str] | set[str], since: dt.datetime | None = None) -> list[Holding]:
        """Active holdings of these accounts, and past ones that ended after `since`."""
        if not accounts:
            return []
        with self._read.begin() as session:
            return self._holdings(session, sorted(set(accounts)), since or self.clock())

    def slurm_jobs(self, cluster: str | None = None, open_only: bool = False) -> list[SlurmJobRecord]:
        """Slurm jobs recorded from sacct (oldest first); `open_only`: those not yet ended."""
        query = select(SlurmUsage).order_by(SlurmUsage.id)
        if cluster is not None:
            query = query.where(SlurmUsage.cluster == cluster)
        if open_only:
            query = query.where(SlurmUsage.ended_at.is_(None))
        with self._read.begin() as session:
            return [
                SlurmJobRecord(r.cluster, r.job_id, r.user, r.server, r.slurm_user, r.slurm_account, r.account,
                               r.flavour, r.gpus, r.gpu_weight, r.state, r.started_at, r.ended_at)
                for r in session.scalars(query)
            ]

    def intervals(self, since: dt.datetime, until: dt.datetime) -> tuple[list[Reservation], list[SlurmUsage]]:
        """Server reservations and Slurm jobs that overlap [since, until) (for usage reports)."""
        with self._read.begin() as session:
            servers = session.scalars(
                select(Reservation).where(
                    Reservation.gpu_weight > 0, Reservation.started_at < until,
                    or_(Reservation.released_at.is_(None), Reservation.released_at > since),
                ).order_by(Reservation.id)
            ).all()
            jobs = session.scalars(
                select(SlurmUsage).where(
                    SlurmUsage.gpu_weight > 0, SlurmUsage.started_at.is_not(None), SlurmUsage.started_at < until,
                    or_(SlurmUsage.ended_at.is_(None), SlurmUsage.ended_at > since),
                ).order_by(SlurmUsage.id)
            ).all()
            return list(servers), list(jobs)

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
        with self._read.begin() as session:  # a plain read: no write lock when they all exist
            known = set(session.scalars(select(AccountLock.key).where(AccountLock.key.in_(keys))))
            missing = [k for k in keys if k not in known]
        for key in missing:
            try:
                with self._session.begin() as session:
                    session.add(AccountLock(key=key))
            except IntegrityError:
                pass  # another process created it first

    def _holdings(self, session: Session, keys: Sequence[str], since: dt.datetime) -> list[Holding]:
        """Holdings of these accounts that are active or ended after `since`: servers, then Slurm jobs."""
        if not keys:
            return []
        # Plain column tuples, not ORM objects: a busy account has thousands of rows a month.
        r, j = Reservation, SlurmUsage
        query = select(r.user, r.server, r.account, r.flavour, r.units, r.gpu_weight, r.started_at, r.released_at).where(
            r.account.in_(list(keys)), or_(r.released_at.is_(None), r.released_at > since),
        )
        out = [Holding(*row) for row in session.execute(query)]
        jobs = select(j.user, j.cluster, j.job_id, j.account, j.flavour, j.gpus, j.gpu_weight, j.started_at,
                      j.ended_at).where(
            j.account.in_(list(keys)), j.gpu_weight > 0, j.started_at.is_not(None),
            or_(j.ended_at.is_(None), j.ended_at > since),
        )
        now = self.clock()
        out.extend(
            # never "active" for the policy: Slurm's GrpTRES limits concurrent GPUs of jobs
            Holding(user, f"slurm:{cluster}:{job_id}", account, flavour, gpus, weight, start, min(end or now, now))
            for user, cluster, job_id, account, flavour, gpus, weight, start, end in session.execute(jobs)
        )
        return out

    @classmethod
    def _release(cls, session: Session, user: str, server: str, now: dt.datetime, reason: str) -> list[int]:
        rows = session.scalars(
            select(Reservation).where(
                Reservation.user == user, Reservation.server == server, Reservation.released_at.is_(None)
            )
        ).all()
        return cls._release_rows(session, rows, now, reason)

    @staticmethod
    def _release_rows(session: Session, rows: Sequence[Reservation], now: dt.datetime, reason: str) -> list[int]:
        for row in rows:
            row.released_at = now
            session.add(
                Event(
                    at=now, kind="release", user=row.user, server=row.server, profile=row.profile,
                    account=row.account, flavour=row.flavour, units=row.units, reservation_id=row.id, message=reason,
                )
            )
        return [row.id for row in rows]


_ledgers: dict[str, Ledger] = {}
_ledgers_lock = threading.Lock()


def ledger_for(url: str) -> Ledger:
    """One Ledger (engine, connection pool) per URL in this process (its hub id from `$SCIP_HUB_ID`)."""
    with _ledgers_lock:
        ledger = _ledgers.get(url)
        if ledger is None:
            ledger = _ledgers[url] = Ledger(url)
        return ledger
