"""Tags every Slurm job carries, so any job can be traced to a notebook server.

The tags go in `--comment` (machine-readable) and `--job-name` (readable in
`squeue`). One format, written and parsed here only.

The comment is *injective*: two different (user, server, ...) tuples never
give the same comment. Each value is percent-encoded (UTF-8; only
`A-Za-z0-9_.-~@` stay literal), so `,` `=` `%` `|`, spaces, newlines and any
unicode are escaped, nothing is truncated, and the comment is plain ASCII
that is safe on a command line. JupyterHub's unnamed server is the server
`""` and is always written, so a named server called `default` is a
different server.

>>> t = JobTags(user="alice", server="", project="def-smith", course="", site="fir", jurisdiction="CA")
>>> comment = t.comment()
>>> comment
'scip.ca:user=alice,server=,project=def-smith,site=fir,jurisdiction=CA'
>>> JobTags.from_comment(comment) == t
True
>>> JobTags(user="alice+lab@uni.ca").comment() == JobTags(user="alice_lab@uni.ca").comment()
False
>>> JobTags(user="é, x=1").comment()
'scip.ca:user=%C3%A9%2C%20x%3D1,server='
>>> JobTags.from_comment("someone else's job") is None
True

Tags are for people and for reconcile only: who owns a job is decided by the
Slurm account it runs as and by the (cluster, job id, account) the registry
recorded at submission (scip_jupyter/arc/registry.py), never by this text,
which anyone can write into their own job's comment.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from urllib.parse import quote, unquote

from .. import LABEL_PREFIX

_SAFE = re.compile(r"[^A-Za-z0-9_.@-]")
COMMENT_PREFIX = f"{LABEL_PREFIX}:"
#: Fields always written (even empty): the unnamed server is "" and must not read as absent.
_ALWAYS = ("user", "server")


def _clean(value: str) -> str:
    """For the job name only (people read it; it need not be unique)."""
    return _SAFE.sub("_", value or "")[:64]


def encode(value: str) -> str:
    """One tag value, reversibly escaped.

    >>> encode("a b|c"), decode(encode("a b|c"))
    ('a%20b%7Cc', 'a b|c')
    """
    return quote(value or "", safe="@", errors="surrogatepass")


def decode(text: str) -> str:
    return unquote(text, errors="surrogatepass")


@dataclass(frozen=True)
class JobTags:
    user: str
    server: str = ""  # JupyterHub's unnamed server
    project: str = ""
    course: str = ""
    site: str = ""
    jurisdiction: str = ""

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, str(getattr(self, f.name) or ""))

    def comment(self) -> str:
        parts = [
            f"{f.name}={encode(getattr(self, f.name))}"
            for f in fields(self)
            if f.name in _ALWAYS or getattr(self, f.name)
        ]
        return COMMENT_PREFIX + ",".join(parts)

    def job_name(self, role: str = "dask-worker") -> str:
        return f"scip-{role}-{_clean(self.user)}-{_clean(self.server) or 'default'}"

    @classmethod
    def from_comment(cls, comment: str) -> "JobTags | None":
        """The tags in a job's comment; None when it is not ours or not well-formed."""
        if not comment or not comment.startswith(COMMENT_PREFIX):
            return None
        values: dict[str, str] = {}
        known = {f.name for f in fields(cls)}
        for kv in comment[len(COMMENT_PREFIX):].split(","):
            key, eq, value = kv.partition("=")
            if not eq or key not in known or key in values:
                return None  # a repeated or unknown key is not a comment we wrote
            values[key] = decode(value)
        if "user" not in values or "server" not in values:
            return None
        return cls(**values)

    def same_server(self, other: "JobTags") -> bool:
        return (self.user, self.server) == (other.user, other.server)

    @classmethod
    def from_environment(cls, project: str = "", course: str = "", site: str = "", jurisdiction: str = "") -> "JobTags":
        """Tags for the notebook server this process runs in (JupyterHub sets these variables)."""
        env = os.environ
        return cls(
            user=env.get("JUPYTERHUB_USER") or env.get("USER") or "unknown",
            server=env.get("JUPYTERHUB_SERVER_NAME") or "",
            project=project,
            course=course or env.get("SCIP_COURSE", ""),
            site=site,
            jurisdiction=jurisdiction,
        )
