"""Pure hub builders for courses: groups, roles, granted profiles, the spawn `course` option, config wiring."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from traitlets.config import Config

from scip_jupyter.courses.hub import (
    access_scopes_for,
    check_course_option,
    configure,
    extra_profiles,
    hub_groups,
    hub_roles,
    student_roles,
)
from scip_jupyter.courses.registry import load_courses
from scip_jupyter.hub_setup import add_server_token_scopes
from scip_jupyter.options import OptionsError

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "hub_config" / "courses.yaml"


def test_groups_enrol_users_and_members_of_listed_groups(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "courses.yaml").write_text(
        "courses:\n  - id: c1\n    title: t\n    instructors: [teach]\n    students: {users: [alice], groups: [cohort]}\n"
        "    material: {path: m}\n    profiles: [cpu-small]\n    start: 2026-01-01\n    end: 2026-12-31\n"
    )
    reg = load_courses(tmp_path / "courses.yaml")
    groups = hub_groups(reg, {"cohort": ["bob", "teach"]})
    assert groups["course-c1-students"] == {"users": ["alice", "bob"], "properties": {"scip.course": "c1"}}
    assert groups["course-c1-instructors"]["users"] == ["teach"]


def test_student_role_only_lets_their_servers_report_to_the_service():
    [role] = [r for r in student_roles(load_courses(DEMO)) if r["name"] == "course-intro-gpu-student"]
    assert role["groups"] == ["course-intro-gpu-students"]
    assert role["scopes"] == ["access:services!service=scip-courses"]


def test_server_token_scopes_keep_what_was_configured():
    c = Config()
    c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", "access:services!service=scip-gpu"]
    add_server_token_scopes(c, "access:services!service=scip-courses", "access:services!service=scip-gpu")
    assert c.Spawner.server_token_scopes == ["users:activity!user", "access:servers!server",
                                             "access:services!service=scip-gpu", "access:services!service=scip-courses"]


def test_instructor_role_is_scoped_to_the_course_students_group():
    roles = {r["name"]: r for r in hub_roles(load_courses(DEMO))}
    role = roles["course-intro-gpu-instructor"]
    assert role["groups"] == ["course-intro-gpu-instructors"]
    assert "access:servers!group=course-intro-gpu-students" in role["scopes"]
    assert all("!group=course-intro-gpu-students" in s or s.startswith("access:services!service=") for s in role["scopes"])
    assert not any(s in ("access:servers", "admin:users", "admin:servers") for s in role["scopes"])


@pytest.mark.parametrize(
    "user, groups, day, expected",
    [
        ("student1", [], dt.date(2026, 11, 25), {"mig-1g-10gb", "cpu-small"}),
        ("student1", [], dt.date(2025, 3, 1), {"mig-3g-40gb"}),  # while the 2025 course ran
        ("researcher1", ["researchers"], dt.date(2026, 11, 25), set()),
    ],
)
def test_extra_profiles_follow_the_course_dates(user, groups, day, expected):
    assert extra_profiles(DEMO, user, groups, day) == expected


def test_extra_profiles_without_a_registry_file_is_empty(tmp_path):
    assert extra_profiles(tmp_path / "missing.yaml", "student1", []) == set()


def test_a_students_server_accepts_the_instructors_group_scope():
    reg = load_courses(DEMO)
    assert access_scopes_for(reg, ["students", "course-intro-gpu-students"]) == [
        "access:servers!group=course-intro-gpu-students"
    ]
    assert access_scopes_for(reg, ["researchers"]) == []


@pytest.mark.parametrize(
    "user, course, status, words",
    [
        ("researcher1", "intro-gpu", 403, "not enrolled"),
        ("student1", "llm-finetune-2025", 403, "ended on 2025-04-30"),
        ("student1", "<script>", 400, "no course"),
    ],
)
def test_course_option_must_name_an_active_course_of_the_user(user, course, status, words):
    with pytest.raises(OptionsError) as err:
        check_course_option(DEMO, user, [], course)
    assert err.value.field == "course" and err.value.status == status and words in str(err.value)
    check_course_option(DEMO, "student1", [], "intro-gpu")  # no error


def test_configure_merges_into_the_hub_config():
    c = Config()
    c.Spawner.environment = {"PATH": "/usr/bin"}
    groups = {"students": {"users": ["student1"]}}
    roles: list = [{"name": "admin", "services": ["x"]}]
    services: list = []
    c.JupyterHub.db_url = "sqlite:////srv/hub/jupyterhub.sqlite"
    configure(c, DEMO, groups=groups, roles=roles, services=services, service_port=12345,
              service_token="t" * 32, public_url="http://127.0.0.1:8000/", service_ip="10.0.0.7")
    assert groups["students"] == {"users": ["student1"]} and "course-intro-gpu-students" in groups
    assert [r["name"] for r in roles][0] == "admin" and "scip-courses-service" in [r["name"] for r in roles]
    service = services[0]
    assert service["name"] == "scip-courses" and service["url"] == "http://10.0.0.7:12345"
    assert service["environment"]["SCIP_COURSES_FILE"] == str(DEMO.resolve())
    # progress reports: kept beside the hub's own database; servers report to the service's URL
    assert service["environment"]["SCIP_COURSE_REPORTS"] == "/srv/hub/scip-course-reports.sqlite"
    assert "SCIP_HOMES" not in service["environment"]  # the service reads no student's folder
    assert c.Spawner.environment == {"PATH": "/usr/bin", "SCIP_COURSES_FILE": str(DEMO.resolve()),
                                     "SCIP_COURSES_SERVICE_URL": "http://10.0.0.7:12345/services/scip-courses/"}
    assert c.Spawner.server_token_scopes == ["users:activity!user", "access:servers!server",
                                             "access:services!service=scip-courses"]
    assert c.SCIPSpawnerMixin.courses_path == str(DEMO.resolve())
    pattern, handler, kwargs = c.JupyterHub.extra_handlers[-1]
    assert pattern == r"/scip/course/([^/]+)/launch" and handler.__name__ == "CourseLaunchHandler"
    assert callable(c.Spawner.group_overrides)
