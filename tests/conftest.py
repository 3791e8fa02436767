"""Shared test set-up. One fixture module per real component (tests/fixtures/):
each starts its component once per session, tears it down, and FAILS loudly when
it cannot start (never skips)."""

pytest_plugins = [
    "tests.fixtures.common",
    "tests.fixtures.slurm",
    "tests.fixtures.postgres",
    "tests.fixtures.hub",
    "tests.fixtures.prometheus",
    "tests.fixtures.k8s",
    "tests.fixtures.browser",
]
