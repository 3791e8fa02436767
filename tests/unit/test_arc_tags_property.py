"""Job tags are injective: two different (user, server) pairs never share a comment (hypothesis)."""

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
