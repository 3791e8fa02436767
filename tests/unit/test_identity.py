"""Per-person accounts and credentials: the pure parts (naming, useradd, JWT claims, not-root note)."""

import base64
import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from scip_jupyter.identity import MAX_NAME, _jwt_expiry, mint_slurm_jwt, system_username, useradd_argv

PORTABLE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@settings(max_examples=400, deadline=None)
@given(a=st.text(min_size=1, max_size=60), b=st.text(min_size=1, max_size=60))
def test_two_people_never_get_the_same_account(a, b):
    if a != b:
        assert system_username(a) != system_username(b)


@settings(max_examples=300, deadline=None)
@given(name=st.text(min_size=1, max_size=80))
def test_account_names_are_portable_and_short(name):
    account = system_username(name)
    assert account.startswith("jupyter-") and len(account) <= MAX_NAME
    assert PORTABLE.match(account[len("jupyter-"):] or "x"), account


def test_a_name_cannot_claim_someone_elses_hashed_account():
    hashed = system_username("Alice")  # not portable: readable part + hash
    assert system_username(hashed[len("jupyter-"):]) != hashed


def test_tljh_convention_and_configurable_prefix():
    assert system_username("student1") == "jupyter-student1"
    assert system_username("student1", prefix="scip-") == "scip-student1"


def test_useradd_gives_an_own_group_and_the_given_home():
    argv = useradd_argv("jupyter-a", "/srv/home/a", "a:b")
    assert "--user-group" in argv and argv[-1] == "jupyter-a"
    assert ":" not in argv[argv.index("--comment") + 1]  # a colon would corrupt /etc/passwd


def test_minted_jwt_has_slurms_claims_and_expiry():
    token, exp = mint_slurm_jwt(b"k" * 32, "jupyter-a", 600, now=1_000)
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims == {"exp": 1_600, "iat": 1_000, "sun": "jupyter-a"}
    assert _jwt_expiry(token) == exp == 1_600
