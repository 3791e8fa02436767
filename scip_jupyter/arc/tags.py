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

The legacy format (before these tags) wrote each value cleaned (every
character outside `A-Za-z0-9_.@-` became `_`, at most 64 characters), left
empty fields out, and called the unnamed server `default`. So a legacy
`server=default` is the unnamed server *or* a server named "default", and a
legacy `user=alice_lab` may be `alice+lab`. We read such a comment the safe
way: it names every server that could have written it (`names_server`), and
clean-up cancels its job only when none of those servers runs. A comment is
read this way when it could be legacy (`may_be_legacy`: every value non-empty
and in the legacy alphabet); a server named "default" is now written
`server=%64efault`, so a literal `server=default` is only ever a legacy one.

>>> legacy = "scip.ca:user=alice,server=default,project=def-smith"
>>> names_server(legacy, "alice", ""), names_server(legacy, "alice", "default"), names_server(legacy, "alice", "gpu")
(True, True, False)
>>> JobTags(user="alice", server="default").comment()
'scip.ca:user=alice,server=%64efault'
>>> names_server(JobTags(user="alice", server="default").comment(), "alice", "")
False
>>> names_server("scip.ca:user=alice_lab,server=gpu_1", "alice+lab", "gpu 1")
True
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
#: The legacy format's name of the unnamed server; a server *named* so is written with its "d"
#: percent-encoded (decodes to the same name), so that a literal `server=default` is always legacy.
_LEGACY_DEFAULT = "default"
_LEGACY_DEFAULT_WRITTEN = "%64efault"
#: One value as the legacy writer left it: non-empty, cleaned to this alphabet, at most 64 characters.
_LEGACY_VALUE = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


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
            f"{f.name}={_LEGACY_DEFAULT_WRITTEN if f.name == 'server' and self.server == _LEGACY_DEFAULT else encode(getattr(self, f.name))}"
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


# ---------------------------------------------------------------- the legacy format (read only)


def _raw_values(comment: str) -> dict[str, str] | None:
    if not comment or not comment.startswith(COMMENT_PREFIX):
        return None
    out: dict[str, str] = {}
    for kv in comment[len(COMMENT_PREFIX):].split(","):
        key, eq, value = kv.partition("=")
        if not eq or key in out:
            return None
        out[key] = value
    return out


def may_be_legacy(comment: str) -> bool:
    """Could the legacy writer have written `comment`? (Then its values may be cleaned names.)

    >>> may_be_legacy("scip.ca:user=alice,server=default"), may_be_legacy("scip.ca:user=alice,server=")
    (True, False)
    >>> may_be_legacy("scip.ca:user=a%2Bb,server=gpu"), may_be_legacy("scip.ca:user=alice,server=%64efault")
    (False, False)
    """
    values = _raw_values(comment)
    known = {f.name for f in fields(JobTags)}
    return (bool(values) and "user" in values and set(values) <= known
            and all(_LEGACY_VALUE.fullmatch(v) for v in values.values()))


def legacy_clean(value: str) -> str:
    """A name as the legacy writer wrote it (`alice+lab` -> `alice_lab`, at most 64 characters)."""
    return _clean(value)


def names_server(comment: str, user: str, server: str) -> bool:
    """Could the notebook server `user`/`server` ("" = unnamed) have tagged a job with `comment`?

    Today's tags name exactly one server. A comment that may be legacy names every
    server whose legacy-cleaned names it carries (its unnamed server was `default`).
    """
    tags = JobTags.from_comment(comment)
    if tags is not None and (tags.user, tags.server) == (user, server or ""):
        return True
    if not may_be_legacy(comment):
        return False
    values = _raw_values(comment) or {}
    return values.get("user") == legacy_clean(user) and values.get("server", _LEGACY_DEFAULT) == legacy_clean(server or _LEGACY_DEFAULT)


def tagged_person(comment: str, person: str) -> bool:
    """Could `person` (a hub user name) be the one `comment` names (exactly, or legacy-cleaned)?

    >>> tagged_person("scip.ca:user=alice_lab,server=", "alice+lab"), tagged_person("scip.ca:user=alice_lab,server=default", "alice+lab")
    (False, True)
    """
    tags = JobTags.from_comment(comment)
    if tags is not None and tags.user == person:
        return True
    return may_be_legacy(comment) and (_raw_values(comment) or {}).get("user") == legacy_clean(person)


def tagged_user(comment: str) -> str:
    """The user name a comment carries, as written (a legacy one may be cleaned); "" when none."""
    tags = JobTags.from_comment(comment)
    if tags is not None:
        return tags.user
    return (_raw_values(comment) or {}).get("user", "") if may_be_legacy(comment) else ""
