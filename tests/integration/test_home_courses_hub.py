"""The home page's course card on a real embedded hub: the version comes from the student's own server's report.

The same source as on Kubernetes (tests/integration/test_kube_chart_hub.py),
where the hub pod mounts no home: the card reads the `scip-courses` service's
report store, never the student's folder. A hub of its own (hub_factory), so
"no report yet" holds before the first launch, with a registry whose material
the test changes.
"""

from __future__ import annotations

import re
import time

import pytest

from tests.fixtures.course_progress import card_version, home_course_card
from tests.integration.test_course_hub import _follow

pytestmark = pytest.mark.hub

REGISTRY = """\
courses:
  - id: home-card
    title: "Home card course"
    instructors: [instructor1]
    students:
      users: [student1]
    material:
      path: material
    profiles: [cpu-small]
    start: 2026-01-01
    end: 2099-12-31
"""
NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture(scope="module")
def card_hub(hub_factory):
    import json

    state = hub_factory.state_dir()
    (state / "material").mkdir()
    (state / "material" / "01-start.ipynb").write_text(json.dumps(NOTEBOOK))
    (state / "courses.yaml").write_text(REGISTRY)
    hub = hub_factory.start(state, courses_file=state / "courses.yaml", name="home-courses-hub")
    yield hub
    hub.stop_server("student1")
    hub_factory.stop(hub)


def _card(session, hub, language="en") -> str:
    return home_course_card(session, hub.url, "home-card", language)


def _wait_for_card(session, hub, check, tries: int = 90) -> str:
    card = ""
    for _ in range(tries):
        card = _card(session, hub)
        if check(card):
            return card
        time.sleep(1)
    pytest.fail(f"the home page card never showed the report: {card}\n{hub.log_tail()}")


def test_card_shows_the_version_the_students_own_server_reported(card_hub):
    hub = card_hub
    session = hub.login("student1")
    # before any server of theirs reported: said in words, in both languages, no version claimed
    before = _card(session, hub)
    assert "Your server has not reported this course yet" in before and not card_version(before)
    assert "Votre serveur n&#39;a pas encore transmis" in _card(session, hub, "fr")

    _follow(hub, session, "/hub/scip/course/home-card/launch")
    hub.wait_for_server("student1")
    card = _wait_for_card(session, hub, lambda c: bool(card_version(c)))
    delivered = card_version(card)
    instructor = hub.login("instructor1")
    page = instructor.get(hub.url + "/services/scip-courses/course/home-card.csv", timeout=60).text
    assert f",{delivered}," in page  # the instructor's CSV shows the same reported version
    stamp = re.search(r'<time datetime="([^"]+)">reported (\d{4}-\d\d-\d\d \d\d:\d\d) UTC</time>', card)
    assert stamp, card
    assert "up to date" in card and "update available" not in card
    assert "transmis le" in _card(session, hub, "fr")

    # new material: the card offers the update (the report still says the old version)
    (hub.state_dir / "material" / "02-more.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, '
                                                              '"nbformat_minor": 5}')
    card = _wait_for_card(session, hub, lambda c: "update available" in c, tries=30)
    assert card_version(card) == delivered

    # a stopped server's last report still shows
    hub.stop_server("student1")
    card = _card(session, hub)
    assert card_version(card) == delivered and "reported " in card
