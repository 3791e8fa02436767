"""Our hub pages in Debian Chromium, in English and French: the home page as the landing page,
the language switcher, the spawn form as cards, a Slurm job cancelled from the home page,
the instructor pages; each page checked with axe-core (no serious or critical violation)
and saved as a screenshot in test-artifacts/ (home-<page>-<lang>.png).

Uses the session hub (`scip-jupyter up`, tests/fixtures/hub.py) and the real local Slurm.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from scip_jupyter.arc.tags import JobTags
from scip_jupyter.i18n import LANGUAGE_COOKIE
from tests.fixtures.browser import save_screenshot
from tests.fixtures.common import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.slurm]

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
ACCEPT = {"en": "en-CA,en;q=0.9", "fr": "fr-CA,fr;q=0.9,en;q=0.5"}
#: Words each page must show in each language (taken from the catalog's French).
HEADINGS = {
    "en": ["Your courses", "Your server", "Your allocation", "Your Slurm jobs"],
    "fr": ["Vos cours", "Votre serveur", "Votre allocation", "Vos tâches Slurm"],
}
SLURM_CONF = os.environ.get("SLURM_CONF") or str(ROOT / ".state" / "slurm" / "slurm.conf")


async def check_accessibility(page, name: str) -> None:
    """Inject axe-core into the page and fail on any serious or critical violation."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make setup` (npm installs axe-core from package.json)", pytrace=False)
    await page.add_script_tag(path=str(AXE))
    violations = await page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations.map(v => ({
               id: v.id, impact: v.impact, help: v.help,
               targets: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))"""
    )
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not bad, f"{name}: axe-core violations:\n" + "\n".join(
        f"  {v['impact']} {v['id']}: {v['help']} at {v['targets']}" for v in bad)


async def new_page(chromium, lang: str):
    context = await chromium.new_context(viewport={"width": 1300, "height": 1000},
                                         extra_http_headers={"Accept-Language": ACCEPT[lang]}, locale=lang)
    context.set_default_timeout(90_000)
    return context, await context.new_page()


async def login(page, hub, user: str) -> None:
    await page.goto(hub.url + "/hub/login")
    await page.fill("#username_input", user)
    await page.fill("#password_input", hub.password)
    await page.click("#login_submit")
    await page.wait_for_url("**/hub/scip/home**")


@pytest.mark.parametrize("lang", ["en", "fr"])
async def test_student_lands_on_their_home_page_in_their_language(chromium, hub, artifacts_dir, lang):
    context, page = await new_page(chromium, lang)
    try:
        await page.goto(hub.url + "/hub/login")
        assert await page.get_attribute("html", "lang") == lang
        await check_accessibility(page, f"login ({lang})")
        await save_screenshot(page, artifacts_dir, f"home-login-{lang}")

        await login(page, hub, "student1")  # the landing page after login is the home page
        assert await page.get_attribute("html", "lang") == lang
        body = await page.inner_text("#scip-home")
        for heading in HEADINGS[lang]:
            assert heading in body, body
        assert await page.locator("#scip-courses [data-course]").count() >= 1
        assert await page.locator("#scip-allocation [data-account]").count() >= 1
        assert await page.locator("#scip-allocation svg.scip-chart rect").count() >= 7
        assert await page.locator("#jupyterhub-logo").count() == 1  # the hub's own page.html around it
        await check_accessibility(page, f"home ({lang})")
        await save_screenshot(page, artifacts_dir, f"home-student-{lang}")

        await page.goto(hub.url + "/hub/spawn/student1")
        cards = page.locator(".scip-card")
        assert await cards.count() >= 2
        assert await page.locator("input[name=profile]:checked").count() == 1
        await page.locator("input[name=profile]").first.focus()  # keyboard: the radios are reachable
        await page.keyboard.press("ArrowDown")
        assert await page.locator("input[name=profile]:checked").count() == 1
        await check_accessibility(page, f"spawn form ({lang})")
        await save_screenshot(page, artifacts_dir, f"home-spawn-form-{lang}")

        await page.goto(hub.url + "/hub/home")  # the hub's servers page, our translated copy
        assert await page.get_attribute("html", "lang") == lang
        assert ("Démarrer mon serveur" if lang == "fr" else "Start My Server") in await page.inner_text("#start")
        await check_accessibility(page, f"servers ({lang})")
        await save_screenshot(page, artifacts_dir, f"home-servers-{lang}")

        await page.goto(hub.url + "/user/student1/lab")  # the server is not running: the hub says so
        await page.wait_for_selector("#start")
        assert ("Serveur arrêté" if lang == "fr" else "Server not running") in await page.inner_text("h1")
        await check_accessibility(page, f"not running ({lang})")
        await save_screenshot(page, artifacts_dir, f"home-not-running-{lang}")
    finally:
        await context.close()


async def test_language_switcher_choice_wins_over_the_browser(chromium, hub, artifacts_dir):
    context, page = await new_page(chromium, "en")
    try:
        await login(page, hub, "researcher1")
        assert "Your courses" in await page.inner_text("#scip-home")
        await page.click("#scip-language a[lang=fr]")
        await page.wait_for_url("**/hub/scip/home**")
        assert await page.get_attribute("html", "lang") == "fr"
        assert "Vos cours" in await page.inner_text("#scip-home")
        cookies = {c["name"]: c["value"] for c in await context.cookies()}
        assert cookies.get(LANGUAGE_COOKIE) == "fr"
        await page.reload()  # the browser still asks for English: the choice is kept
        assert await page.get_attribute("html", "lang") == "fr"
        await save_screenshot(page, artifacts_dir, "home-researcher-fr")
        await page.click("#scip-language a[lang=en]")
        await page.wait_for_url("**/hub/scip/home**")
        assert await page.get_attribute("html", "lang") == "en"
    finally:
        await context.close()


def _submit_tagged_job(user: str) -> str:
    env = {**os.environ, "SLURM_CONF": SLURM_CONF}
    comment = JobTags(user=user, server="").comment()
    out = subprocess.run(
        ["sbatch", "--parsable", "--job-name", "home-page-test", f"--comment={comment}", "--time=10",
         "--wrap", "sleep 600"], capture_output=True, text=True, env=env, timeout=60,
    )
    if out.returncode != 0:
        pytest.fail(f"sbatch failed (is the local Slurm running? scripts/slurm-local start): {out.stderr}",
                    pytrace=False)
    return out.stdout.strip().split(";")[0]


def _in_queue(job_id: str) -> str:
    env = {**os.environ, "SLURM_CONF": SLURM_CONF}
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, env=env, timeout=60)
    return out.stdout.strip()


@pytest.mark.parametrize("lang", ["fr"])
async def test_home_page_lists_and_cancels_the_persons_slurm_job(chromium, hub, artifacts_dir, lang):
    job_id = _submit_tagged_job("researcher1")
    context, page = await new_page(chromium, lang)
    try:
        await login(page, hub, "researcher1")
        row = page.locator(f"#scip-job-table tr[data-job='{job_id}']")
        deadline = time.monotonic() + 120
        while await row.count() == 0 and time.monotonic() < deadline:  # the hub caches squeue for 10 s
            await page.wait_for_timeout(2000)
            await page.reload()
        assert await row.count() == 1, await page.inner_text("#scip-jobs")
        await check_accessibility(page, f"home with a job ({lang})")
        await save_screenshot(page, artifacts_dir, f"home-jobs-{lang}")
        await row.locator("button[type=submit]").click()
        await page.wait_for_url("**/hub/scip/home?notice=cancelled")
        deadline = time.monotonic() + 60
        while _in_queue(job_id) not in ("", "CANCELLED", "COMPLETING") and time.monotonic() < deadline:
            time.sleep(1)
        assert _in_queue(job_id) in ("", "CANCELLED", "COMPLETING")
    finally:
        subprocess.run(["scancel", job_id], env={**os.environ, "SLURM_CONF": SLURM_CONF}, timeout=60)
        await context.close()


async def test_someone_elses_job_cannot_be_cancelled(hub):
    job_id = _submit_tagged_job("instructor1")
    try:
        session = hub.login("researcher1")
        xsrf = session.cookies.get("_xsrf") or ""
        r = session.post(f"{hub.url}/hub/scip/jobs/local-slurm/{job_id}/cancel", data={"_xsrf": xsrf},
                         allow_redirects=False, timeout=60)
        assert r.status_code == 403, r.text[:500]
        assert _in_queue(job_id) not in ("", "CANCELLED")
    finally:
        subprocess.run(["scancel", job_id], env={**os.environ, "SLURM_CONF": SLURM_CONF}, timeout=60)


@pytest.mark.parametrize("lang", ["en", "fr"])
async def test_instructor_pages_are_hub_styled_with_progress_charts(chromium, hub, artifacts_dir, lang):
    context, page = await new_page(chromium, lang)
    try:
        await login(page, hub, "instructor1")
        link = page.locator("#scip-courses a[href*='services/scip-courses']")
        assert await link.count() == 1
        await link.click()
        await page.wait_for_url("**/services/scip-courses/**")
        assert await page.get_attribute("html", "lang") == lang
        await check_accessibility(page, f"instructor index ({lang})")
        await save_screenshot(page, artifacts_dir, f"home-instructor-index-{lang}")
        await page.locator("table a[href*='course/']").first.click()
        await page.wait_for_selector("#progress-per-notebook")
        assert await page.locator("#progress-per-notebook li").count() >= 1
        assert await page.locator("#jupyterhub-logo").count() == 1
        await check_accessibility(page, f"instructor course ({lang})")
        await save_screenshot(page, artifacts_dir, f"home-instructor-course-{lang}")
    finally:
        await context.close()
