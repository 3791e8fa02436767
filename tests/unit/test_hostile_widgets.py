"""Hostile widget input: links and text from Slurm, Dask and the person never become markup or script."""

from __future__ import annotations

import pytest

from widgets.status import safe_href

#: links that must not become clickable: scripts, other hosts, and what browsers rewrite into them
REFUSED = [
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "//evil.example/x",
    "/\\evil.example/x",
    "\\\\evil.example/x",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r/evil.example",
    "http://a/\nb",
    "https://a b/",
    "http:\\\\evil.example",
    "ftp://evil.example/",
    "mailto:a@b",
    "",
    None,
    "status",
    "../../hub/admin",
    '/user/a/"onmouseover="alert(1)',
    "/user/a/<script>",
]
KEPT = [
    "http://127.0.0.1:8787/status",
    "https://dask.example.org/status?x=1#y",
    "/user/alice/proxy/8787/status",
    "/user/alice%40x/proxy/8787/status",
]


@pytest.mark.parametrize("link", REFUSED, ids=repr)
def test_unsafe_link_is_not_made_clickable(link):
    assert safe_href(link) == ""


@pytest.mark.parametrize("link", KEPT)
def test_dashboard_links_stay_clickable(link):
    assert safe_href(link) == link


# --- the ARC launcher's choices (what a person types or picks in the widget) ----------------------

from scip_jupyter.arc.presets import ARCRequestError  # noqa: E402
from tests.unit.test_widgets_launcher import model as launcher_model  # noqa: E402

LAUNCHER_REFUSED = [
    ("preset", "no-such-cluster"), ("preset", "<script>alert(1)</script>"), ("preset", ""),
    ("account", "def-bob"), ("account", "def-alice; scancel -u alice"), ("account", "--uid=0"),
    ("partition", "no-such"), ("partition", "cpu --exclusive"), ("partition", "-p gpu"),
    ("gpu_type", "h100\n#SBATCH --uid=0"), ("gpu_type", "<img src=x onerror=alert(1)>"),
    ("gpus", -1), ("gpus", 10_000), ("gpus", "2; rm -rf ~"), ("gpus", 1.5),
    ("walltime", "99999:00:00"), ("walltime", "03:00:00\n#SBATCH --exclusive"), ("walltime", "soon"),
    ("workers", -3), ("workers", 10**9), ("workers", [2]),
]
#: values the launcher normalises rather than refuses: empty means the preset's default, "2" is 2
LAUNCHER_NORMALISED = [("gpus", None), ("walltime", ""), ("workers", "2"), ("workers", None)]


@pytest.mark.parametrize("field, value", LAUNCHER_REFUSED, ids=lambda v: repr(v)[:40])
def test_hostile_launcher_choice_is_refused_and_changes_nothing(field, value):
    m = launcher_model()
    before = (m.preset, m.account, m.partition, m.gpu_type, m.gpus, m.walltime, m.workers, m.request)
    with pytest.raises((ARCRequestError, TypeError, ValueError)) as err:
        m.set(field, value)
    if isinstance(err.value, ARCRequestError):
        assert str(err.value).startswith(field), str(err.value)
    assert (m.preset, m.account, m.partition, m.gpu_type, m.gpus, m.walltime, m.workers, m.request) == before


@pytest.mark.parametrize("field, value", LAUNCHER_NORMALISED, ids=lambda v: repr(v)[:40])
def test_empty_or_numeric_text_launcher_choice_is_normalised_to_a_valid_request(field, value):
    m = launcher_model()
    m.set(field, value)
    assert isinstance(m.gpus, int) and isinstance(m.workers, int) and m.walltime
    assert m.request is not None and m.check("workers", m.workers) == m.request
