"""The courses service's group pass (every 30 s) asks the hub for users only when something may be added.

It listed every user each pass (the hub builds every person's model for that)
only to learn whether the registry's students exist. Now a pass in step makes no
user request, a few candidates are looked up by name, and only many make it list
everyone. The hub here is a stand-in that keeps users and groups and counts the
requests; the changes are checked against the full-listing computation.
"""

from __future__ import annotations

import asyncio
import doctest
import re
from urllib.parse import parse_qs, urlparse

import pytest

from scip_jupyter.courses import service
from scip_jupyter.courses.service import LOOKUP_LIMIT, sync_groups
from scip_jupyter.courses.view import group_changes


class FakeHub(service.HubAPI):
    """The hub REST calls the pass makes, answered from memory (pages of `page` items), counted by kind."""

    def __init__(self, users, groups, page: int = 200):
        self.users_ = set(users)
        self.groups_ = {g: list(m) for g, m in groups.items()}
        self.page = page
        self.requests: list[str] = []

    def count(self, kind: str) -> int:
        return sum(1 for r in self.requests if r == kind)

    async def call(self, method, path, body=None):
        url = urlparse(path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        offset, limit = int(query.get("offset", 0)), min(int(query.get("limit", 200)), self.page)
        if method == "GET" and url.path in ("/users", "/groups"):
            if url.path == "/groups":
                self.requests.append("list groups")
                items = [{"name": g, "users": m} for g, m in sorted(self.groups_.items())]
            elif "name_filter" in query:
                self.requests.append("filter users")
                # JupyterHub: name ILIKE '%<filter>%', where '_' is any one character
                pattern = re.compile(".".join(re.escape(part) for part in query["name_filter"].split("_")), re.I)
                items = [{"name": u} for u in sorted(self.users_) if pattern.search(u)]
            else:
                self.requests.append("list users")
                items = [{"name": u, "servers": {}} for u in sorted(self.users_)]
            window = items[offset : offset + limit]
            nxt = {"offset": offset + limit} if offset + limit < len(items) else None
            return {"items": window, "_pagination": {"offset": offset, "limit": limit, "next": nxt}}
        group = url.path.split("/")[2]
        self.requests.append(f"{method} group")
        if method == "POST" and url.path.endswith("/users"):
            self.groups_[group] = sorted(set(self.groups_[group]) | set(body["users"]))
        elif method == "DELETE":
            self.groups_[group] = sorted(set(self.groups_[group]) - set(body["users"]))
        else:
            self.groups_[group] = []
        return None


class Course:
    """What desired_members reads of a course."""

    def __init__(self, cid, students, instructors=()):
        self.students_group, self.instructors_group = f"course-{cid}-students", f"course-{cid}-instructors"
        self.students, self.instructors = list(students), list(instructors)

    def student_names(self, members):
        return sorted(self.students)


class Registry:
    def __init__(self, *courses):
        self.courses = list(courses)


def old_changes(hub: FakeHub, registry) -> list:
    """What the pass did before: the changes from every user's listing."""
    from scip_jupyter.courses.hub import desired_members

    return group_changes(desired_members(registry, hub.groups_), hub.groups_, hub.users_)


def test_a_pass_in_step_makes_no_user_request():
    hub = FakeHub(users={f"u{i}" for i in range(1000)} | {"prof"},
                  groups={"course-x-students": ["u1", "u2"], "course-x-instructors": ["prof"]})
    assert asyncio.run(sync_groups(hub, Registry(Course("x", ["u1", "u2"], ["prof"])))) == []
    assert hub.requests == ["list groups"]


def test_a_few_candidates_are_looked_up_by_name_and_unknown_ones_left_out():
    hub = FakeHub(users={f"u{i}" for i in range(1000)} | {"jean_dupont", "jeanXdupont"},
                  groups={"course-x-students": ["u1"]})
    registry = Registry(Course("x", ["u1", "u2", "jean_dupont", "never-logged-in"]))
    expected = old_changes(hub, registry)

    changes = asyncio.run(sync_groups(hub, registry))

    assert changes == expected
    assert sorted(hub.groups_["course-x-students"]) == ["jean_dupont", "u1", "u2"]
    assert hub.count("list users") == 0 and hub.count("filter users") == 3  # one per candidate (u2 matches u2, u20, ...)


def test_many_candidates_list_every_user_once():
    students = [f"s{i}" for i in range(LOOKUP_LIMIT + 1)]
    hub = FakeHub(users=students[::2] + [f"u{i}" for i in range(450)], groups={}, page=200)
    registry = Registry(Course("big", students))
    expected = old_changes(hub, registry)

    assert asyncio.run(sync_groups(hub, registry)) == expected
    assert hub.count("filter users") == 0 and hub.count("list users") == 3  # the listing's three pages, once


def test_a_name_found_only_on_a_later_page_of_the_filter_counts():
    hub = FakeHub(users={f"{i:02d}a" for i in range(30)} | {"a"}, groups={}, page=10)  # 30 names with "a" sort first
    registry = Registry(Course("x", ["a"]))
    expected = old_changes(hub, registry)
    assert asyncio.run(sync_groups(hub, registry)) == expected
    assert hub.groups_["course-x-students"] == ["a"]
    assert hub.count("filter users") == 4  # pages of 10: 30 others, then "a"


@pytest.mark.parametrize("seed", range(20))
def test_the_changes_are_those_of_the_full_listing(seed):
    import random

    rng = random.Random(seed)
    people = [f"p{i}" for i in range(120)]
    users = set(rng.sample(people, 80))
    groups = {"course-a-students": rng.sample(sorted(users), 20), "other": rng.sample(sorted(users), 10)}
    registry = Registry(Course("a", rng.sample(people, rng.choice([5, 30, 70])), rng.sample(people, 2)),
                        Course("b", rng.sample(people, 10)))
    hub = FakeHub(users, groups)
    expected = old_changes(hub, registry)
    assert asyncio.run(sync_groups(hub, registry)) == expected


def test_service_doctests_pass():
    result = doctest.testmod(service)
    assert result.attempted > 0 and result.failed == 0
