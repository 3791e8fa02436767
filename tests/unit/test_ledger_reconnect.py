"""The ledger's PostgreSQL connections when the server is not there: fail in words, never hang.

The server stopped and started again under a running hub is the integration test
(tests/integration/test_faults_postgres.py); here, without PostgreSQL: a port that
accepts TCP and never answers (a server gone silent), and the words a person reads.
"""

from __future__ import annotations

import doctest
import socket
import threading

import pytest
from sqlalchemy.exc import OperationalError

from scip_jupyter.allocations import ledger as ledger_module
from scip_jupyter.allocations.ledger import Ledger, unavailable_reason
from scip_jupyter.i18n import use_locale


def test_ledger_helpers_doctests_pass():
    result = doctest.testmod(ledger_module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_server_that_never_answers_fails_the_open_instead_of_hanging(monkeypatch):
    monkeypatch.setitem(ledger_module.PG_CONNECT_ARGS, "connect_timeout", 1)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever answers libpq
    port = silent.getsockname()[1]
    outcome: list[BaseException | None] = []

    def open_ledger():
        try:
            Ledger(f"postgresql+psycopg://scip:pw@127.0.0.1:{port}/scip").dispose()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            outcome.append(exc)

    worker = threading.Thread(target=open_ledger, daemon=True)
    worker.start()
    worker.join(timeout=60)  # a guard only: without connect_timeout libpq would wait forever
    silent.close()
    assert outcome, "opening a ledger on a server that never answers did not return"
    assert isinstance(outcome[0], OperationalError) and "timeout" in str(outcome[0]).lower(), outcome


@pytest.mark.parametrize("language, words", [
    ("en", "its database does not answer or is busy"),
    ("fr", "sa base de données ne répond pas ou est occupée"),
])
def test_unavailable_reason_never_names_the_database(language, words):
    exc = OperationalError("SELECT 1", {}, Exception(
        'connection to server at "10.0.0.5", port 5432 failed: password authentication failed for user "scip"'))
    with use_locale(language):
        reason = unavailable_reason(exc)
    assert reason == words and "10.0.0.5" not in reason and "scip" not in reason
