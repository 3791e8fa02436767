"""Every Slurm job a notebook server starts, recorded so nothing is orphaned.

The ARC bridge records a job as soon as `sbatch` returns its id, and forgets it
when the job is cancelled or has finished. The server extension's shutdown hook
cancels what is still recorded for its server (see scip_jupyter/server/arc_handlers.py);
the hub side does not trust this file (a `kill -9` can lose the last write) and
cancels leftovers by their `--comment` tags instead (scip_jupyter/arc/hub_hooks.py).

A job is identified by (cluster, job id) and owned by the Slurm account that
submitted it, recorded here at submission: the jobs API and the shutdown hook
act on a job only when Slurm reports that same owner (server_jobs.py), never
because of tag text, which any user can write into their own job's comment.

Storage is one SQLite file per account (SQLAlchemy), shared by the kernels and
the notebook server of that account: several processes write it at once, so
the database runs in WAL mode with a busy timeout, and every operation is one
short transaction.

>>> import tempfile, os
>>> from scip_jupyter.arc.tags import JobTags
>>> reg = JobRegistry(os.path.join(tempfile.mkdtemp(), "jobs.sqlite"))
>>> reg.record("123", "local-slurm", JobTags(user="alice", server="gpu"), preset="local-slurm", account="jupyter-alice")
>>> [(r.cluster, r.job_id, r.account) for r in reg.jobs_for("alice", "gpu")]
[('local-slurm', '123', 'jupyter-alice')]
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
    # v2: keyed by (cluster, job id), with the owning account (v1 files keep their old table, unused)
    __tablename__ = "arc_jobs_v2"

    cluster: Mapped[str] = mapped_column(String(128), primary_key=True)
    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(String(256), default="")
    preset: Mapped[str] = mapped_column(String(128))
    user: Mapped[str] = mapped_column(String(256), index=True)
    server: Mapped[str] = mapped_column(String(256), index=True)
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
    account: str = ""  # the Slurm account that submitted it ("" = not known when recorded)

    @property
    def user(self) -> str:
        return self.tags.user

    @property
    def server(self) -> str:
        return self.tags.server


def _to_record(row: _Job) -> JobRecord:
    tags = JobTags.from_comment(row.comment) or JobTags(user=row.user, server=row.server)
    submitted = row.submitted if row.submitted.tzinfo else row.submitted.replace(tzinfo=timezone.utc)
    return JobRecord(
        job_id=row.job_id, cluster=row.cluster, preset=row.preset, tags=tags, submitted=submitted, account=row.account or ""
    )


class JobRegistry:
    """The jobs of this account's notebook servers, in one SQLite file."""

    _defaults: dict[str, "JobRegistry"] = {}
    _defaults_lock = threading.Lock()

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _make_private(self.path)  # before SQLite opens it: its -wal and -shm files take the file's mode
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

    def record(self, job_id: str, cluster: str, tags: JobTags, preset: str, account: str = "") -> None:
        """Remember a submitted job as (cluster, job id, owning account); recording it again updates it."""
        row = _Job(
            job_id=str(job_id),
            cluster=cluster,
            account=account or "",
            preset=preset,
            user=tags.user,
            server=tags.server,
            comment=tags.comment(),
            submitted=datetime.now(timezone.utc),
        )
        with Session(self.engine) as session, session.begin():
            session.merge(row)

    def forget(self, job_id: str, cluster: str | None = None) -> None:
        """Drop a job (cancelled or finished), on `cluster` or on every cluster. Unknown ids are not an error."""
        query = delete(_Job).where(_Job.job_id == str(job_id))
        if cluster is not None:
            query = query.where(_Job.cluster == cluster)
        with Session(self.engine) as session, session.begin():
            session.execute(query)

    def jobs_for(self, user: str, server: str) -> list[JobRecord]:
        """The jobs started by one notebook server, oldest first (names compared exactly)."""
        return self._select(select(_Job).where(_Job.user == user, _Job.server == (server or "")))

    def all(self) -> list[JobRecord]:
        return self._select(select(_Job))

    def _select(self, query) -> list[JobRecord]:
        with Session(self.engine) as session:
            rows = session.scalars(query.order_by(_Job.submitted, _Job.job_id)).all()
            return [_to_record(r) for r in rows]


def _make_private(path: Path) -> None:
    """Create the database file 0600 (or make it so), and its -wal/-shm files if they are left over."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(f"{path}{suffix}"):
                os.chmod(f"{path}{suffix}", 0o600)
    except OSError:
        pass


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer (kernels + server)
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.close()
