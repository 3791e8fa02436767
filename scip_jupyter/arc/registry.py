"""Every Slurm job a notebook server starts, recorded so nothing is orphaned.

The ARC bridge records a job as soon as `sbatch` returns its id, and forgets it
when the job is cancelled or has finished. The server extension's shutdown hook
cancels what is still recorded for its server (see scip_jupyter/server/arc_handlers.py);
the hub side does not trust this file (a `kill -9` can lose the last write) and
cancels leftovers by their `--comment` tags instead (scip_jupyter/arc/hub_hooks.py).

Storage is one SQLite file per account (SQLAlchemy), shared by the kernels and
the notebook server of that account: several processes write it at once, so
the database runs in WAL mode with a busy timeout, and every operation is one
short transaction.

>>> import tempfile, os
>>> from scip_jupyter.arc.tags import JobTags
>>> reg = JobRegistry(os.path.join(tempfile.mkdtemp(), "jobs.sqlite"))
>>> reg.record("123", "local-slurm", JobTags(user="alice", server="gpu"), preset="local-slurm")
>>> [r.job_id for r in reg.jobs_for("alice", "gpu")]
['123']
>>> reg.forget("123")
>>> reg.all()
[]
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import DateTime, String, create_engine, delete, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from .tags import JobTags

#: Environment variable naming the registry file (tests and hub-managed servers set it).
ENV_PATH = "SCIP_ARC_REGISTRY"
DEFAULT_PATH = Path("~/.local/share/scip/arc-jobs.sqlite")
#: How long a writer waits for another process's transaction before giving up (ms).
BUSY_TIMEOUT_MS = 10_000


class _Base(DeclarativeBase):
    pass


class _Job(_Base):
    __tablename__ = "arc_jobs"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    cluster: Mapped[str] = mapped_column(String(128))
    preset: Mapped[str] = mapped_column(String(128))
    user: Mapped[str] = mapped_column(String(64), index=True)
    server: Mapped[str] = mapped_column(String(64), index=True)
    comment: Mapped[str] = mapped_column(String(512))
    submitted: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class JobRecord:
    """One recorded job (a whole array job counts as one record: `scancel <id>` ends all its tasks)."""

    job_id: str
    cluster: str
    preset: str
    tags: JobTags
    submitted: datetime

    @property
    def user(self) -> str:
        return self.tags.user

    @property
    def server(self) -> str:
        return self.tags.server


def _to_record(row: _Job) -> JobRecord:
    tags = JobTags.from_comment(row.comment) or JobTags(user=row.user, server=row.server)
    submitted = row.submitted if row.submitted.tzinfo else row.submitted.replace(tzinfo=timezone.utc)
    return JobRecord(job_id=row.job_id, cluster=row.cluster, preset=row.preset, tags=tags, submitted=submitted)


class JobRegistry:
    """The jobs of this account's notebook servers, in one SQLite file."""

    _defaults: dict[str, "JobRegistry"] = {}
    _defaults_lock = threading.Lock()

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(
            f"sqlite:///{self.path}",
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        event.listen(self.engine, "connect", _sqlite_pragmas)
        _Base.metadata.create_all(self.engine)
        try:  # the file holds who runs what: keep it private to the account
            os.chmod(self.path, 0o600)
        except OSError:
            pass

    @classmethod
    def default(cls) -> "JobRegistry":
        """The registry at $SCIP_ARC_REGISTRY, else ~/.local/share/scip/arc-jobs.sqlite (one per path per process)."""
        path = str(Path(os.environ.get(ENV_PATH) or DEFAULT_PATH).expanduser())
        with cls._defaults_lock:
            if path not in cls._defaults:
                cls._defaults[path] = cls(path)
            return cls._defaults[path]

    def record(self, job_id: str, cluster: str, tags: JobTags, preset: str) -> None:
        """Remember a submitted job (recording the same id again updates it)."""
        row = _Job(
            job_id=str(job_id),
            cluster=cluster,
            preset=preset,
            user=tags.user,
            server=tags.server,
            comment=tags.comment(),
            submitted=datetime.now(timezone.utc),
        )
        with Session(self.engine) as session, session.begin():
            session.merge(row)

    def forget(self, job_id: str) -> None:
        """Drop a job (cancelled or finished). Forgetting an unknown id is not an error."""
        with Session(self.engine) as session, session.begin():
            session.execute(delete(_Job).where(_Job.job_id == str(job_id)))

    def jobs_for(self, user: str, server: str) -> list[JobRecord]:
        """The jobs started by one notebook server, oldest first."""
        tags = JobTags(user=user, server=server)  # same character cleaning as when recorded
        query = select(_Job).where(_Job.user == tags.user, _Job.server == tags.server)
        return self._select(query)

    def all(self) -> list[JobRecord]:
        return self._select(select(_Job))

    def _select(self, query) -> list[JobRecord]:
        with Session(self.engine) as session:
            rows = session.scalars(query.order_by(_Job.submitted, _Job.job_id)).all()
            return [_to_record(r) for r in rows]


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer (kernels + server)
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.close()
