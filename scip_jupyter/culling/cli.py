"""`scip-jupyter gpu`: what GPU culling reclaimed, per group and per course.

    scip-jupyter gpu reclaimed                      # this month, every account
    scip-jupyter gpu reclaimed --since 2026-11-01 --until 2026-12-01 --project researchers
    scip-jupyter gpu culls --user ana               # each cull: when, profile, idle time, GPU-hours

The ledger is `--ledger URL`, else `$SCIP_LEDGER_URL`, else the embedded hub's
(as for `scip-jupyter usage`). `reclaimed_lines(...)` is the same report for
other commands to print.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

from ..i18n import _
from .records import Records, reclaimed_gpu_hours


def default_ledger_url() -> str:
    if os.environ.get("SCIP_LEDGER_URL"):
        return os.environ["SCIP_LEDGER_URL"]
    from ..embedded import HubSettings

    state = Path(os.environ.get("SCIP_HUB_STATE") or HubSettings.from_env({}).state_dir)
    return f"sqlite:///{state / 'private' / 'allocations.sqlite'}"


def _day(value: str, flag: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise ValueError(_("{flag}: {value!r} is not a day as YYYY-MM-DD").format(flag=flag, value=value)) from None


def account_label(key: str) -> str:
    """`group:lab` -> `group lab`, `course:ml` -> `course ml`, `` -> `not metered`."""
    kind, _sep, name = key.partition(":")
    if not key:
        return _("not metered")
    return f"{_('group') if kind == 'group' else _('course') if kind == 'course' else kind} {name}"


def reclaimed_lines(ledger_url: str, since: dt.datetime | None = None, until: dt.datetime | None = None,
                    project: str | None = None, user: str | None = None) -> list[str]:
    """The reclaimed GPU-hours report as lines (one per account, then the total)."""
    rows = reclaimed_gpu_hours(ledger_url, since, until, user)
    if project:
        rows = [r for r in rows if r.account.partition(":")[2] == project or r.account == project]
    lines = [_("Reclaimed GPU-hours (GPUs held idle until culled)")]
    for r in rows:
        lines.append(f"  {account_label(r.account):<32} {r.gpu_hours:>10.2f}  ({_('{n} culls').format(n=r.culls)})")
    lines.append(f"  {_('total'):<32} {sum(r.gpu_hours for r in rows):>10.2f}")
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=["reclaimed", "culls"], help="reclaimed GPU-hours per account, or each cull")
    parser.add_argument("--since", help="first UTC day, YYYY-MM-DD (default: the first of this month)")
    parser.add_argument("--until", help="UTC day after the last, YYYY-MM-DD (default: now)")
    parser.add_argument("--project", help="one group or course")
    parser.add_argument("--user", help="one hub user (culls)")
    parser.add_argument("--ledger", metavar="URL", help="SQLAlchemy URL of the ledger (default: $SCIP_LEDGER_URL)")


def run(args: argparse.Namespace) -> int:
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    try:
        since = _day(args.since, "--since") if args.since else dt.datetime(now.year, now.month, 1)
        until = _day(args.until, "--until") if args.until else None
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    url = args.ledger or default_ledger_url()
    try:
        if args.what == "reclaimed":
            print("\n".join(reclaimed_lines(url, since, until, args.project, args.user)))
            return 0
        records = Records(url)
        try:
            for c in records.culls(user=args.user):
                if c.at < since or (until and c.at >= until):
                    continue
                print(f"{c.at:%Y-%m-%d %H:%M}  {c.user}/{c.server}  {c.profile}  {account_label(c.account)}  "
                      f"{_('idle {minutes} min').format(minutes=round(c.idle_seconds / 60))}  "
                      f"{c.gpu_hours_idle:.2f} GPU-h")
        finally:
            records.dispose()
    except Exception as exc:  # noqa: BLE001 - a person reads this; the URL may hold a password
        print(_("--ledger: the ledger cannot be read ({error})").format(error=type(exc).__name__), file=sys.stderr)
        return 1
    return 0
