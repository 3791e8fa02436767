"""Cull records and notices, in the allocation ledger's database (their own tables).

* `scip_gpu_culls`: one row per server the GPU culler stopped: who, which
  server and profile, the account that paid for it (from the ledger's
  reservation), how long its GPU sat idle and the GPU-hours it held idle
  (idle seconds x the profile's GPU share): the reclaimed GPU-hours.
* `scip_gpu_notices`: what a person is told: `idle-warning` (your GPU is idle,
  the server stops at ...), `budget-warning` (90 % of the allocation used),
  `budget-exhausted` (servers stop at ...), `budget-stop` (this server was
  stopped). A notice is open until `cleared_at` is set; the `scip-gpu` service
  serves a person's open notices (`GET /services/scip-gpu/api/notices`).

Times are naive UTC (as in the ledger). The tables are the ledger's Alembic revision
0003 (`allocations/migrations/`): `Records(url)` brings the database to the newest
revision with `ledger.migrate`, as `Ledger(url)` does, under the same lock. A database
whose culling tables `create_all` made before 0003 keeps them and their rows.
`reclaimed(...)` is what `scip-jupyter usage` reports.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import DateTime, Float, Integer, String, Text, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from ..allocations.ledger import make_engine, migrate, utcnow


class Base(DeclarativeBase):
    """The culling tables' models; their schema is migration 0003's (a test compares the two)."""


class Cull(Base):
    __tablename__ = "scip_gpu_culls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    user: Mapped[str] = mapped_column(String(255), index=True)
    server: Mapped[str] = mapped_column(String(255), default="")
    profile: Mapped[str] = mapped_column(String(64))
    account: Mapped[str] = mapped_column(String(128), default="", index=True)
    gpu_weight: Mapped[float] = mapped_column(Float, default=0.0)
    idle_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    gpu_hours_idle: Mapped[float] = mapped_column(Float, default=0.0)
    reason: Mapped[str] = mapped_column(Text, default="")


class Notice(Base):
    __tablename__ = "scip_gpu_notices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(32))
    user: Mapped[str] = mapped_column(String(255), index=True)
    server: Mapped[str] = mapped_column(String(255), default="")
    account: Mapped[str] = mapped_column(String(128), default="")
    deadline: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    cleared_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


@dataclass(frozen=True)
class CullRecord:
    at: dt.datetime
    user: str
    server: str
    profile: str
    account: str
    gpu_weight: float
    idle_seconds: float
    gpu_hours_idle: float
    reason: str


@dataclass(frozen=True)
class NoticeRecord:
    id: int
    at: dt.datetime
    kind: str
    user: str
    server: str
    account: str
    deadline: dt.datetime | None
    message: str
    cleared_at: dt.datetime | None

    def as_json(self) -> dict:
        return {
            "id": self.id, "at": self.at.isoformat() + "Z", "kind": self.kind, "user": self.user,
            "server": self.server, "account": self.account, "message": self.message,
            "deadline": self.deadline.isoformat() + "Z" if self.deadline else None,
        }


@dataclass(frozen=True)
class Reclaimed:
    """GPU-hours reclaimed by culling, for one account (`group:x`, `course:y`, `""` unmetered)."""

    account: str
    culls: int
    gpu_hours: float


class Records:
    """Cull records and notices (thread-safe: one session per call)."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        migrate(self.engine)  # the tables are the ledger's migrations' (0003), never create_all
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    # --- culls -----------------------------------------------------------------------------------

    def record_cull(self, record: CullRecord) -> None:
        with self._session.begin() as s:
            s.add(Cull(**record.__dict__))

    def culls(self, user: str | None = None) -> list[CullRecord]:
        q = select(Cull).order_by(Cull.id)
        if user is not None:
            q = q.where(Cull.user == user)
        with self._session.begin() as s:
            return [CullRecord(c.at, c.user, c.server, c.profile, c.account, c.gpu_weight, c.idle_seconds,
                               c.gpu_hours_idle, c.reason) for c in s.scalars(q)]

    def reclaimed(self, since: dt.datetime | None = None, until: dt.datetime | None = None,
                  user: str | None = None) -> list[Reclaimed]:
        """Reclaimed GPU-hours per account, largest first (one person's culls when `user` is given)."""
        q = select(Cull.account, func.count(Cull.id), func.sum(Cull.gpu_hours_idle)).group_by(Cull.account)
        if user is not None:
            q = q.where(Cull.user == user)
        if since is not None:
            q = q.where(Cull.at >= since)
        if until is not None:
            q = q.where(Cull.at < until)
        with self._session.begin() as s:
            rows = [Reclaimed(a, int(n), round(float(h or 0), 6)) for a, n, h in s.execute(q)]
        return sorted(rows, key=lambda r: (-r.gpu_hours, r.account))

    def write_many(self, ops: list[tuple[str, dict]]) -> None:
        """Several writes in ONE transaction: ("cull", {record}), ("post", {...}), ("clear", {...}), in order.

        The arbiter batches a round's writes this way (one commit instead of one per notice).
        """
        if not ops:
            return
        with self._session.begin() as s:
            for kind, kw in ops:
                if kind == "cull":
                    s.add(Cull(**kw["record"].__dict__))
                elif kind == "post":
                    s.add(Notice(at=kw.get("at") or utcnow(), kind=kw["kind"], user=kw["user"],
                                 server=kw.get("server", ""), account=kw.get("account", ""),
                                 deadline=kw.get("deadline"), message=kw.get("message", "")))
                elif kind == "clear":
                    s.execute(self._clear_query(**kw))
                else:
                    raise ValueError(f"write_many: unknown operation {kind!r}")

    # --- notices ---------------------------------------------------------------------------------

    def post(self, kind: str, user: str, server: str = "", message: str = "", account: str = "",
             deadline: dt.datetime | None = None, at: dt.datetime | None = None) -> int:
        with self._session.begin() as s:
            row = Notice(at=at or utcnow(), kind=kind, user=user, server=server, account=account,
                         deadline=deadline, message=message)
            s.add(row)
            s.flush()
            return row.id

    def clear(self, kinds: Iterable[str], user: str | None = None, server: str | None = None,
              account: str | None = None, at: dt.datetime | None = None) -> int:
        """Close open notices of these kinds (for one user/server/account when given); returns how many."""
        with self._session.begin() as s:
            return s.execute(self._clear_query(kinds, user, server, account, at)).rowcount

    @staticmethod
    def _clear_query(kinds, user=None, server=None, account=None, at=None):
        q = update(Notice).where(Notice.kind.in_(list(kinds)), Notice.cleared_at.is_(None))
        if user is not None:
            q = q.where(Notice.user == user)
        if server is not None:
            q = q.where(Notice.server == server)
        if account is not None:
            q = q.where(Notice.account == account)
        return q.values(cleared_at=at or utcnow())

    def notices(self, user: str | None = None, kinds: Iterable[str] | None = None,
                open_only: bool = False) -> list[NoticeRecord]:
        q = select(Notice).order_by(Notice.id)
        if user is not None:
            q = q.where(Notice.user == user)
        if kinds is not None:
            q = q.where(Notice.kind.in_(list(kinds)))
        if open_only:
            q = q.where(Notice.cleared_at.is_(None))
        with self._session.begin() as s:
            return [NoticeRecord(n.id, n.at, n.kind, n.user, n.server, n.account, n.deadline, n.message,
                                 n.cleared_at) for n in s.scalars(q)]

    def dispose(self) -> None:
        self.engine.dispose()


def reclaimed_gpu_hours(ledger_url: str, since: dt.datetime | None = None,
                        until: dt.datetime | None = None, user: str | None = None) -> list[Reclaimed]:
    """Reclaimed GPU-hours per account in the ledger's database (for `scip-jupyter usage`)."""
    records = Records(ledger_url)
    try:
        return records.reclaimed(since, until, user)
    finally:
        records.dispose()
