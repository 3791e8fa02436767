"""Job tags are injective: two different (user, server) pairs never share a comment (hypothesis)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scip_jupyter.arc.tags import JobTags

names = st.text(max_size=40)  # any unicode, separators, newlines, "%", "=", ","


@settings(max_examples=500, deadline=None)
@given(a=st.tuples(names, names), b=st.tuples(names, names))
def test_different_user_server_pairs_never_share_a_tag(a, b):
    ta, tb = JobTags(user=a[0], server=a[1]), JobTags(user=b[0], server=b[1])
    if a != b:
        assert ta.comment() != tb.comment()
    else:
        assert ta.comment() == tb.comment()


@settings(max_examples=500, deadline=None)
@given(user=names, server=names, project=names, course=names)
def test_comment_round_trips_and_is_safe_on_a_command_line(user, server, project, course):
    t = JobTags(user=user, server=server, project=project, course=course)
    comment = t.comment()
    assert JobTags.from_comment(comment) == t
    assert comment.isascii() and not any(ch in comment for ch in " \t\n\r|'\"\\;$`")


def test_the_issues_collisions_are_gone():
    assert JobTags(user="alice+lab@uni.ca").comment() != JobTags(user="alice_lab@uni.ca").comment()
    assert JobTags(user="a", server="default").comment() != JobTags(user="a", server="").comment()


def test_a_comment_with_repeated_or_unknown_keys_is_not_ours():
    assert JobTags.from_comment("scip.ca:user=a,server=,user=b") is None
    assert JobTags.from_comment("scip.ca:user=a,server=,owner=b") is None
    assert JobTags.from_comment("scip.ca:user=a") is None


# ---------------------------------------------------------------- the legacy format, read safely

from scip_jupyter.arc.tags import may_be_legacy, names_server, tagged_person  # noqa: E402

LEGACY_UNNAMED = "scip.ca:user=alice,server=default,project=def-smith,site=fir,jurisdiction=CA"


def test_a_legacy_default_names_both_servers_it_may_have_come_from():
    assert may_be_legacy(LEGACY_UNNAMED)
    assert names_server(LEGACY_UNNAMED, "alice", "") and names_server(LEGACY_UNNAMED, "alice", "default")
    assert not names_server(LEGACY_UNNAMED, "alice", "gpu") and not names_server(LEGACY_UNNAMED, "bob", "")


def test_a_server_named_default_is_written_so_that_it_cannot_read_as_legacy():
    named = JobTags(user="alice", server="default")
    assert named.comment() == "scip.ca:user=alice,server=%64efault"
    assert JobTags.from_comment(named.comment()) == named and not may_be_legacy(named.comment())
    assert names_server(named.comment(), "alice", "default") and not names_server(named.comment(), "alice", "")
    unnamed = JobTags(user="alice", server="").comment()
    assert names_server(unnamed, "alice", "") and not names_server(unnamed, "alice", "default")


@pytest.mark.parametrize(
    "comment, user, server, expected",
    [
        ("scip.ca:user=alice_lab,server=gpu_1", "alice+lab", "gpu 1", True),  # legacy cleaned names
        ("scip.ca:user=alice_lab,server=gpu_1", "alice_lab", "gpu_1", True),
        ("scip.ca:user=alice_lab,server=gpu_1", "alice", "gpu_1", False),
        ("scip.ca:user=" + "x" * 64 + ",server=default", "x" * 80, "", True),  # legacy truncation at 64
        ("scip.ca:user=alice%2Blab,server=", "alice_lab", "", False),  # today's format: exact only
        ("scip.ca:user=alice,server=", "alice", "default", False),
        ("scip.ca:user=alice,server=default,owner=bob", "alice", "", False),  # not a comment we wrote
        ("someone else's job", "alice", "", False),
    ],
)
def test_names_server_table(comment, user, server, expected):
    assert names_server(comment, user, server) is expected


def test_legacy_user_names_are_candidates_only_never_owners_by_themselves():
    # both people could have written it; reconcile asks Slurm's owning account (hub_hooks.reconcile_plan)
    assert tagged_person("scip.ca:user=alice_lab,server=default", "alice+lab")
    assert tagged_person("scip.ca:user=alice_lab,server=default", "alice_lab")
    assert not tagged_person("scip.ca:user=alice_lab,server=", "alice+lab")
