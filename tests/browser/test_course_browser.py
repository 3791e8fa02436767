"""A course end to end in Debian Chromium: launch link -> material in JupyterLab -> the student
edits -> the instructor publishes -> the student syncs from the course panel -> the edit is still there.

This module starts its own hub through the `scip-jupyter up` code path
(`hub_factory`, tests/fixtures/hub.py) with its own course registry, whose
material folder the test edits as an instructor would, so the shared hub and
the repository's notebooks/ are never touched.
"""

from __future__ import annotations

import json
import os

import nbformat
import pytest

from tests.fixtures.browser import run_all_cells, save_screenshot, wait_kernel_idle

pytestmark = [pytest.mark.browser, pytest.mark.hub]
COURSE = "browser-course"
REGISTRY = f"""\
courses:
  - id: {COURSE}
    title: "Browser course <b>not bold</b>"
    instructors: [instructor1]
    students:
      users: [student1]
    material:
      path: material
    profiles: [cpu-small]
    start: 2026-01-01
    end: 2099-12-31
"""
PANEL_CELL = "from scip_widgets.course_panel import CoursePanel\nCoursePanel.for_this_server()"


def _lab_notebook(version: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# Lab one, version {version}\n\nThe course panel below shows your material."),
        nbformat.v4.new_code_cell(PANEL_CELL),
    ]
    return nb


def _publish(material, version: str) -> None:
    """What an instructor does: change the material folder."""
    nbformat.write(_lab_notebook(version), material / "lab1.ipynb")
    (material / "data.txt").write_text(f"data {version}\n")
    for p in material.rglob("*"):
        os.chmod(p, 0o755 if p.is_dir() else 0o644)


@pytest.fixture(scope="module")
def course_hub(hub_factory):
    state = hub_factory.state_dir()
    material = state / "material"
    material.mkdir(mode=0o755)
    _publish(material, "1")
    registry = state / "courses.yaml"
    registry.write_text(REGISTRY)
    os.chmod(registry, 0o644)
    hub = hub_factory.start(state, courses_file=registry, name="course-hub")
    try:
        yield hub, material
    finally:
        hub_factory.stop(hub)


async def _login(page, hub, user: str) -> None:
    await page.goto(hub.url + "/hub/login")
    await page.fill("#username_input", user)
    await page.fill("#password_input", hub.password)
    await page.click("#login_submit")
    await page.wait_for_url("**/hub/**")


async def _dismiss_news(page) -> None:
    """JupyterLab asks once about news (a toast over the page's corner): answer No."""
    no = page.locator(".jp-Notification-Toast-Close, .Toastify button", has_text="No")
    if await no.count():
        await no.first.click()


async def test_student_edit_survives_an_instructor_update_synced_from_the_panel(browser_page, course_hub, artifacts_dir):
    hub, material = course_hub
    page = browser_page
    folder = hub.state_dir / "hub" / "home" / "student1" / "courses" / COURSE

    # 1. the student follows the launch link: server with the course profile, material synced, notebook open
    await _login(page, hub, "student1")
    await page.goto(f"{hub.url}/hub/scip/course/{COURSE}/launch?notebook=lab1.ipynb", timeout=180_000)
    await page.wait_for_url(f"**/user/student1/lab/tree/courses/{COURSE}/lab1.ipynb", timeout=180_000)
    await page.locator(".jp-NotebookPanel .jp-Notebook").first.wait_for(state="visible", timeout=120_000)
    await page.locator(".jp-NotebookPanel .jp-RenderedMarkdown h1", has_text="Lab one, version 1").wait_for()
    await wait_kernel_idle(page)
    await _dismiss_news(page)
    assert hub.user("student1")["servers"][""]["user_options"] == {"profile": "cpu-small", "course": COURSE}
    assert (folder / "data.txt").read_text() == "data 1\n"

    # 2. the course panel (a cell of the material) shows the delivered version
    await run_all_cells(page)
    panel = page.locator(".jp-OutputArea-output .scip-course-panel").first
    await panel.wait_for(state="visible")
    assert (await panel.locator(".scip-course-update").inner_text()).strip() == "no"
    assert "<b>not bold</b>" in await panel.locator(".scip-course-title").inner_text()  # markup shown as text

    # 3. the student edits the notebook in the browser and saves
    await page.locator(".jp-NotebookPanel .jp-MarkdownCell").first.click()
    await page.keyboard.press("Escape")
    await page.keyboard.press("b")  # new code cell below the markdown, in command mode
    await page.keyboard.press("Enter")
    await page.keyboard.type("# my answer: 42")
    await page.keyboard.press("Escape")
    await page.keyboard.press("Control+s")
    for _ in range(120):  # the save reaches the disk through the contents API
        if "# my answer: 42" in (folder / "lab1.ipynb").read_text():
            break
        await page.wait_for_timeout(500)
    assert "# my answer: 42" in (folder / "lab1.ipynb").read_text()

    # 4. the instructor publishes version 2
    _publish(material, "2")

    # 5. the student checks, sees the update, and syncs from the panel
    await panel.locator(".scip-course-refresh").click()
    await page.wait_for_function(
        "() => (document.querySelector('.scip-course-update') || {}).textContent?.startsWith('yes')", timeout=60_000
    )
    await panel.locator(".scip-course-sync").click()
    message = panel.locator(".scip-course-message")
    await message.get_by_text("your edited files were kept").wait_for(timeout=120_000)

    # 6. the edit is still there, in the file and on the page; the update arrived beside it and elsewhere
    saved = json.loads((folder / "lab1.ipynb").read_text())
    assert any("# my answer: 42" in "".join(c["source"]) for c in saved["cells"])
    copies = sorted(folder.glob("lab1.update-*.ipynb"))
    assert len(copies) == 1 and "Lab one, version 2" in copies[0].read_text()
    assert (folder / "data.txt").read_text() == "data 2\n"
    assert await page.get_by_text("# my answer: 42").count() >= 1
    assert (await panel.locator(".scip-course-update").inner_text()).strip() == "no"
    await page.locator(".jp-FileBrowser button[title^='Refresh'], .jp-FileBrowser [data-command='filebrowser:refresh']").first.click()
    await page.locator(".jp-DirListing-item", has_text=copies[0].name).wait_for()
    await save_screenshot(page, artifacts_dir, "course-sync-keeps-student-edit")

    # the instructor view sees the student on the current version with one edited file
    status = hub.get(f"/user/student1/scip/api/course/status?course={COURSE}").json()
    assert status["changed"] == ["lab1.ipynb"] and not status["update_available"]
    assert "lab1.ipynb" in status["opened"] and "lab1.ipynb" in status["executed"]
