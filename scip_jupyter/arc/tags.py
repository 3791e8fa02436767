"""Tags every Slurm job carries, so any job can be traced to a notebook server.

The tags go in `--comment` (machine-readable) and `--job-name` (readable in
`squeue`). One format, written and parsed here only.

>>> t = JobTags(user="alice", server="default", project="def-smith", course="", site="fir", jurisdiction="CA")
>>> comment = t.comment()
>>> comment
'scip.ca:user=alice,server=default,project=def-smith,site=fir,jurisdiction=CA'
>>> JobTags.from_comment(comment) == t
True
>>> JobTags.from_comment("someone else's job") is None
True
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields

from .. import LABEL_PREFIX

_SAFE = re.compile(r"[^A-Za-z0-9_.@-]")
COMMENT_PREFIX = f"{LABEL_PREFIX}:"


def _clean(value: str) -> str:
    """Tags end up in Slurm command lines: keep a conservative character set."""
    return _SAFE.sub("_", value or "")[:64]


@dataclass(frozen=True)
class JobTags:
    user: str
    server: str = "default"
    project: str = ""
    course: str = ""
    site: str = ""
    jurisdiction: str = ""

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, _clean(getattr(self, f.name)))

    def comment(self) -> str:
        parts = [f"{f.name}={getattr(self, f.name)}" for f in fields(self) if getattr(self, f.name)]
        return COMMENT_PREFIX + ",".join(parts)

    def job_name(self, role: str = "dask-worker") -> str:
        return f"scip-{role}-{self.user}-{self.server}"

    @classmethod
    def from_comment(cls, comment: str) -> "JobTags | None":
        if not comment or not comment.startswith(COMMENT_PREFIX):
            return None
        values = dict(kv.split("=", 1) for kv in comment[len(COMMENT_PREFIX):].split(",") if "=" in kv)
        if "user" not in values:
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def same_server(self, other: "JobTags") -> bool:
        return (self.user, self.server) == (other.user, other.server)

    @classmethod
    def from_environment(cls, project: str = "", course: str = "", site: str = "", jurisdiction: str = "") -> "JobTags":
        """Tags for the notebook server this process runs in (JupyterHub sets these variables)."""
        env = os.environ
        return cls(
            user=env.get("JUPYTERHUB_USER") or env.get("USER") or "unknown",
            server=env.get("JUPYTERHUB_SERVER_NAME") or "default",
            project=project,
            course=course or env.get("SCIP_COURSE", ""),
            site=site,
            jurisdiction=jurisdiction,
        )
