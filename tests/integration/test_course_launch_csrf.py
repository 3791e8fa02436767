"""The course launch link changes state (group membership, a server start): other sites cannot trigger it.

A GET that arrives from another site (Sec-Fetch-Site: cross-site), or from a
client that does not say where it comes from, gets a confirmation page and
changes nothing; its POST needs the hub's _xsrf token. A navigation made on the
hub itself, typed or bookmarked, goes straight on.
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.hub
LAUNCH = "/hub/scip/course/intro-gpu/launch"


def _servers(hub, user: str) -> dict:
    return hub.api("GET", f"/users/{user}").json().get("servers", {})


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"},
                                     {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "navigate"}, {}],
                         ids=["cross-site", "same-site", "no-header"])
def test_launch_link_from_another_site_asks_first_and_changes_nothing(hub, headers):
    s = hub.login("student1")
    before = _servers(hub, "student1")
    r = s.get(hub.url + LAUNCH + "?notebook=01-getting-started.ipynb", headers=headers, allow_redirects=False, timeout=30)
    assert r.status_code == 200, r.text[:500]
    assert 'method="post"' in r.text and 'name="_xsrf"' in r.text and "01-getting-started.ipynb" in r.text
    assert "frame-ancestors 'none'" in r.headers.get("Content-Security-Policy", "")
    assert _servers(hub, "student1") == before


def test_a_forged_post_without_the_xsrf_token_is_refused(hub):
    s = hub.login("student1")
    before = _servers(hub, "student1")
    r = s.post(hub.url + LAUNCH, data={"notebook": ""}, allow_redirects=False, timeout=30,
               headers={"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate", "Origin": "https://evil.example"})
    assert r.status_code == 403 and "xsrf" in r.text.lower()
    assert _servers(hub, "student1") == before


def test_confirming_on_the_hub_page_launches(hub):
    s = hub.login("student1")
    page = s.get(hub.url + LAUNCH + "?notebook=01-getting-started.ipynb", allow_redirects=False, timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    r = s.post(hub.url + LAUNCH, data={"_xsrf": xsrf, "notebook": "01-getting-started.ipynb"}, allow_redirects=False,
               timeout=30, headers={"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"})
    assert r.status_code == 302, r.text[:500]
    loc = r.headers["Location"]
    assert "/hub/spawn/student1?" in loc or "/user/student1/" in loc or "/hub/spawn-pending/" in loc, loc


@pytest.mark.parametrize("site", ["same-origin", "none"])
def test_a_link_followed_on_the_hub_or_typed_goes_straight_on(hub, site):
    s = hub.login("student1")
    r = s.get(hub.url + LAUNCH, headers={"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "navigate"},
              allow_redirects=False, timeout=30)
    assert r.status_code == 302 and "course=intro-gpu" in r.headers["Location"], r.text[:300]


def test_confirmation_refuses_a_bad_notebook_before_asking(hub):
    s = hub.login("student1")
    r = s.get(hub.url + LAUNCH + "?notebook=../../etc/passwd", headers={"Sec-Fetch-Site": "cross-site"},
              allow_redirects=False, timeout=30)
    assert r.status_code == 400 and "notebook" in r.text
