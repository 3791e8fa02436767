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
