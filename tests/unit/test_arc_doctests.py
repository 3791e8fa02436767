"""The doctests of the ARC bridge's pure helpers run with the unit tests."""

import doctest

import pytest

from scip_jupyter.arc import cluster, compat, jobs, presets, transport


@pytest.mark.parametrize("module", [presets, jobs, transport, compat, cluster], ids=lambda m: m.__name__)
def test_module_doctests_pass(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
