"""XSS in a real browser: payloads in course titles, profile texts, user names and group names.

A hub of this test's own (`hub_factory`) carries `<script>`, `<img onerror>` and
`javascript:` payloads in what people and instructors type: a course title, a
profile's display name and site (tests/fixtures/hub.py TEST_PROFILE, granted
here through the group `testers`), a user name and a group name. Debian
Chromium then opens the spawn form, the home page, the launch confirmation and
the instructor pages; the test fails if a dialog opens, a payload element
exists in the DOM, or a `javascript:` link is clickable.
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote

import pytest

from tests.fixtures.browser import save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.hub]
COURSE = "xss-course"
PAYLOAD = "<img src=x onerror=alert('img')><script>alert('script')</script><a href=\"javascript:alert('js')\">js</a>"
HOSTILE_USER = "x<img src=x onerror=alert('user')>"
REGISTRY = f"""\
courses:
  - id: {COURSE}
    title: {json.dumps(PAYLOAD)}
    instructors: [instructor1]
    students:
      users: [student1]
      groups: [xss-cohort]
    material:
      path: material
    profiles: [cpu-small]
    start: 2026-01-01
    end: 2099-12-31
"""
#: Counts whatever a payload could do: dialogs, payload elements, javascript: links, script text.
PROBE = """() => ({
  onerror: document.querySelectorAll('[onerror]').length,
  jslinks: [...document.querySelectorAll('a[href]')].filter(a => a.href.trim().toLowerCase().startsWith('javascript:')).length,
  scripts: [...document.scripts].filter(s => s.textContent.includes("alert('")).length,
})"""


@pytest.fixture(scope="module")
def xss_hub(hub_factory):
    state = hub_factory.state_dir()
    material = state / "material"
    material.mkdir(mode=0o755)
    (material / "intro.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    os.chmod(material / "intro.ipynb", 0o644)
    registry = state / "courses.yaml"
    registry.write_text(REGISTRY)
    os.chmod(registry, 0o644)
    hub = hub_factory.start(state, courses_file=registry, name="xss-hub")
    try:
        # the profile with payloads is granted to student1 through `testers`
        assert hub.api("POST", "/groups/testers").status_code in (201, 409)
        assert hub.api("POST", "/groups/testers/users", json={"users": ["student1"]}).status_code == 200
        # a hostile user name, enrolled through a group the registry names
        assert hub.api("POST", f"/users/{quote(HOSTILE_USER, safe='')}").status_code in (201, 409)
        assert hub.api("POST", "/groups/xss-cohort").status_code in (201, 409)
        r = hub.api("POST", "/groups/xss-cohort/users", json={"users": [HOSTILE_USER]})
        assert r.status_code == 200, r.text
        yield hub
    finally:
        hub_factory.stop(hub)


async def _login(page, hub, user: str) -> None:
    await page.goto(hub.url + "/hub/login")
    await page.fill("#username_input", user)
    await page.fill("#password_input", hub.password)
    await page.click("#login_submit")
    await page.wait_for_url("**/hub/**")


async def _visit(page, url: str, dialogs: list, artifacts_dir, name: str, must_show: str) -> None:
    response = await page.goto(url, wait_until="load")
    assert response is not None and response.status == 200, (url, response and response.status)
    await page.wait_for_timeout(300)  # let any injected handler fire (counted below, not timed)
    probe = await page.evaluate(PROBE)
    text = await page.inner_text("body")
    await save_screenshot(page, artifacts_dir, f"xss-{name}")
    assert dialogs == [], (name, dialogs)
    assert probe == {"onerror": 0, "jslinks": 0, "scripts": 0}, (name, probe)
    assert must_show in text, (name, must_show, text[:500])  # the payload is there, as text


async def test_payloads_stay_text_on_every_page(browser_page, xss_hub, artifacts_dir):
    page, hub = browser_page, xss_hub
    dialogs: list[str] = []

    async def on_dialog(dialog):
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)

    await _login(page, hub, "student1")
    await _visit(page, hub.url + "/hub/spawn", dialogs, artifacts_dir, "spawn-form", "<script>alert('x')</script> & co")
    await _visit(page, hub.url + "/hub/home", dialogs, artifacts_dir, "home", "student1")

    # the launch confirmation: what a link followed from another site shows (localhost is another
    # site than 127.0.0.1, so Chromium sends Sec-Fetch-Site: cross-site)
    launch = f"{hub.url}/hub/scip/course/{COURSE}/launch?notebook=intro.ipynb"
    await page.goto(hub.url.replace("127.0.0.1", "localhost") + "/hub/login")
    async with page.expect_navigation():
        await page.evaluate("url => { location.href = url; }", launch)
    probe = await page.evaluate(PROBE)
    await save_screenshot(page, artifacts_dir, "xss-launch-confirm")
    assert dialogs == [] and probe == {"onerror": 0, "jslinks": 0, "scripts": 0}, (dialogs, probe)
    assert "onerror=alert('img')" in await page.inner_text("h1.scip-launch-title")
    assert hub.user("student1")["servers"] == {}  # nothing started by the cross-site link

    await page.context.clear_cookies()
    await _login(page, hub, "instructor1")
    await _visit(page, hub.url + "/services/scip-courses/", dialogs, artifacts_dir, "instructor-index", "onerror=alert('img')")
    await _visit(page, f"{hub.url}/services/scip-courses/course/{COURSE}", dialogs, artifacts_dir, "instructor-course",
                 HOSTILE_USER)
