"""The doctests of the shared helpers (config, catalog, lazy imports, templating) run with the unit tests."""

import doctest

import pytest

from scip_jupyter import catalog, config, lazy, templating


@pytest.mark.parametrize("module", [config, catalog, lazy, templating], ids=lambda m: m.__name__)
def test_module_doctests_pass(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
