"""What a notice says to its person, in their language (rendered when read, not when posted).

A notice row keeps its kind, server, account and deadline; the words come from
here through `_()`, so one notice reads in English or French as its reader asks.
The French is in `locale/fr/LC_MESSAGES/culling.po`.
"""

from __future__ import annotations

import datetime as dt

from ..i18n import _
from .records import NoticeRecord


def _when(t: dt.datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC") if t else "?"


def _server(name: str) -> str:
    return name or _("default")


def notice_text(n: NoticeRecord) -> str:
    """The sentence a person reads for one notice.

    >>> import datetime as dt
    >>> n = NoticeRecord(1, dt.datetime(2026, 1, 1, 9), "idle-warning", "ana", "", "group:lab",
    ...                  dt.datetime(2026, 1, 1, 9, 10), "", None)
    >>> notice_text(n)
    'The GPU of your server default has been idle; it will be stopped at 2026-01-01 09:10 UTC unless you use the GPU.'
    """
    account = n.account.replace("group:", "").replace("course:", "")
    if n.kind == "idle-warning":
        return _("The GPU of your server {server} has been idle; it will be stopped at {deadline} unless you use "
                 "the GPU.").format(server=_server(n.server), deadline=_when(n.deadline))
    if n.kind == "budget-warning":
        return _("Your allocation {account} has used 90% of its GPU-hours.").format(account=account)
    if n.kind == "budget-exhausted":
        return _("Your allocation {account} has no GPU-hours left; your GPU servers will be stopped at "
                 "{deadline}.").format(account=account, deadline=_when(n.deadline))
    if n.kind == "budget-stop":
        return _("Your server {server} was stopped: allocation {account} has no GPU-hours left.").format(
            server=_server(n.server), account=account)
    return n.message


def notice_json(n: NoticeRecord) -> dict:
    return {**n.as_json(), "text": notice_text(n)}


def open_notice_texts(ledger_url: str, user: str) -> list[str]:
    """The person's open GPU notices as sentences in the current language (for the home page: one call).

    The ledger's database holds them (`scip_gpu_notices`); a page that cannot reach it shows none.
    """
    from .records import Records

    try:
        records = Records(ledger_url)
    except Exception:  # noqa: BLE001 - the page stands without them
        return []
    try:
        return [notice_text(n) for n in records.notices(user=user, open_only=True)]
    finally:
        records.dispose()
