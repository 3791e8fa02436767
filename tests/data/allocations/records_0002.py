# GPU culling's tables as `culling/records.py` made them before migration 0003 (create_all on
# first use, beside a ledger at revision 0002), kept to test that upgrades keep their rows.
"""The culling tables of the previous release: `scip_gpu_culls`, `scip_gpu_notices` (create_all)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Float, Integer, String, Text, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


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


def write(url: str, culls: list[dict], notices: list[dict]) -> None:
    """What the previous release did on first use (create_all), then these rows."""
    engine = create_engine(url)
    try:
        Base.metadata.create_all(engine)
        with Session(engine) as session, session.begin():
            session.add_all([Cull(**c) for c in culls] + [Notice(**n) for n in notices])
    finally:
        engine.dispose()
