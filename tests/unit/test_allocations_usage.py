"""Usage reports: per-day splitting, filters, and the table, CSV and chart agreeing with the ledger."""

from __future__ import annotations

import csv
import datetime as dt

import pytest

from scip_jupyter.allocations.ledger import Ledger, SlurmJobRecord
from scip_jupyter.allocations.policy import Request, accounts_for
from scip_jupyter.allocations.quotas import Allocations
from scip_jupyter.allocations.usage import SERVER, SLURM, UsageInterval, build_report, load_intervals, parse_day
from scip_jupyter.cli import main as cli

D0 = dt.datetime(2026, 11, 2)
ALLOCATIONS = Allocations.model_validate({
    "groups": {"lab": {"max_gpus": {"h100": 4, "h100_1g.10gb": 7}, "gpu_hours": 1000, "slurm_account": "def-lab"},
               "other": {"max_gpus": {"h100": 4}}},
})


def interval(start_h: float, end_h: float | None, weight=1.0, user="ana", account="group:lab", source=SERVER):
    return UsageInterval(source, user, account, "", "h100", weight, D0 + dt.timedelta(hours=start_h),
                         None if end_h is None else D0 + dt.timedelta(hours=end_h), "")


@pytest.mark.parametrize("start_h, end_h, since_h, until_h, now_h, expected", [
    (1, 3, 0, 24, 30, {0: 2.0}),                    # inside one day
    (20, 28, 0, 48, 50, {0: 4.0, 1: 4.0}),          # across midnight: split
    (20, 28, 22, 48, 50, {0: 2.0, 1: 4.0}),         # clipped at since
    (20, None, 0, 48, 26, {0: 4.0, 1: 2.0}),        # still open: counts up to now
    (30, 40, 0, 24, 50, {}),                        # outside the window
])
def test_intervals_are_clipped_and_split_by_utc_day(start_h, end_h, since_h, until_h, now_h, expected):
    at = lambda h: D0 + dt.timedelta(hours=h)  # noqa: E731
    report = build_report([interval(start_h, end_h)], at(since_h), at(until_h), at(now_h))
    assert {(day - D0.date()).days: pytest.approx(h) for (day, _), h in report.daily.items()} == expected
    assert report.total == pytest.approx(sum(expected.values()))


def test_mig_weight_users_and_project_filters():
    intervals = [
        interval(0, 7, weight=1 / 7, user="ana"),
        interval(0, 2, user="bob", source=SLURM),
        interval(0, 5, user="cy", account="group:other"),
    ]
    end = D0 + dt.timedelta(days=1)
    report = build_report(intervals, D0, end, end)
    assert {(r.user, r.source): round(r.gpu_hours, 6) for r in report.rows} == {
        ("cy", SERVER): 5.0, ("bob", SLURM): 2.0, ("ana", SERVER): 1.0}
    assert build_report(intervals, D0, end, end, project="lab").total == pytest.approx(3.0)
    assert build_report(intervals, D0, end, end, user="cy").total == pytest.approx(5.0)
    assert report.users() == ["cy", "bob", "ana"]


def test_a_bad_date_names_the_field_and_the_allowed_forms():
    with pytest.raises(ValueError) as bad:
        parse_day("yesterday", "--since")
    assert "--since" in str(bad.value) and "YYYY-MM-DD" in str(bad.value)


class Clock:
    def __init__(self):
        self.now = D0

    def __call__(self):
        return self.now


def fill(ledger: Ledger, clock: Clock) -> None:
    """Three users over four days: servers (full H100, MIG) and Slurm jobs."""
    for day in range(4):
        for user, hours, kind in (("ana", 3, "h100"), ("bob", 2 + day, "mig"), ("cy", 1, "h100")):
            clock.now = D0 + dt.timedelta(days=day, hours=8)
            r = (Request(user, "", "h100-full", "h100", 1, 1.0) if kind == "h100"
                 else Request(user, "", "mig-1g-10gb", "h100_1g.10gb", 1, 1 / 7))
            assert ledger.reserve(r, accounts_for(r, ["lab"], ALLOCATIONS, None, clock.now)).allowed
            clock.now += dt.timedelta(hours=hours)
            ledger.release(user)
    start = D0 + dt.timedelta(days=1, hours=22)
    ledger.record_slurm_jobs([
        SlurmJobRecord("local-slurm", f"9{i}", "ana", "s", "scip-user", "def-lab", "group:lab", "h100", 2, 2.0,
                       "COMPLETED", start + dt.timedelta(hours=i), start + dt.timedelta(hours=i + 4))
        for i in range(3)
    ])


def test_cli_table_csv_and_plot_agree_with_the_ledger(tmp_path, capsys, artifacts_dir):
    clock = Clock()
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger = Ledger(url, clock=clock)
    fill(ledger, clock)
    since, until = D0, D0 + dt.timedelta(days=5)
    expected = build_report(load_intervals(ledger, since, until), since, until, until).total
    # the ledger's own figure: every holding's GPU-hours
    holdings = ledger.holdings({"group:lab"}, since)
    assert expected == pytest.approx(sum(h.gpu_hours((since, until), until) for h in holdings))
    ledger.dispose()
    assert expected == pytest.approx(4 * 3 + (2 + 3 + 4 + 5) / 7 + 4 * 1 + 3 * 4 * 2)

    out_csv, out_png = tmp_path / "usage.csv", artifacts_dir / "usage-sample.png"
    rc = cli(["usage", "--ledger", url, "--since", "2026-11-02", "--until", "2026-11-07",
              "--csv", str(out_csv), "--plot", str(out_png)])
    text = capsys.readouterr().out
    assert rc == 0
    assert f"{expected:.2f}" in text.splitlines()[-2] or f"{expected:.2f}" in text
    with open(out_csv) as f:
        rows = list(csv.DictReader(f))
    assert sum(float(r["gpu_hours"]) for r in rows) == pytest.approx(expected, rel=1e-6)
    assert {r["source"] for r in rows} == {"server", "slurm"}
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out_png.stat().st_size > 5000

    capsys.readouterr()
    assert cli(["usage", "--ledger", url, "--since", "2026-11-02", "--until", "2026-11-07", "--user", "cy"]) == 0
    assert "4.00" in capsys.readouterr().out


def test_cli_refuses_a_bad_date_naming_the_field(tmp_path, capsys):
    assert cli(["usage", "--ledger", f"sqlite:///{tmp_path / 'l.sqlite'}", "--since", "nov"]) == 2
    assert "--since" in capsys.readouterr().err


def test_instructor_page_shows_the_courses_gpu_hours(tmp_path, monkeypatch):
    from scip_jupyter.courses.registry import Course
    from scip_jupyter.courses.view import render_course

    course = Course.model_validate({
        "id": "gpu-101", "title": "GPU 101", "instructors": ["teacher"], "students": {"users": ["sam", "kim"]},
        "material": {"path": "m"}, "profiles": ["mig-1g-10gb"], "allocation": {"gpu_hours_per_student": 5},
        "start": "2026-09-01", "end": "2026-12-31",
    })
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    clock = Clock()
    clock.now = dt.datetime(2026, 10, 1, 9)
    ledger = Ledger(url, clock=clock)
    from scip_jupyter.allocations.policy import course_account

    for user, hours in (("sam", 7), ("kim", 14)):
        clock.now = dt.datetime(2026, 10, 1, 9)
        r = Request(user, "", "mig-1g-10gb", "h100_1g.10gb", 1, 1 / 7)
        assert ledger.reserve(r, [course_account(course)]).allowed
        clock.now += dt.timedelta(hours=hours)
        ledger.release(user)
    ledger.dispose()
    monkeypatch.setenv("SCIP_LEDGER_URL", url)
    html = render_course(course, "active", "v1", [], [], [], "/p/")
    assert 'id="course-gpu-hours"' in html and "3.00 GPU-hours used by 2 people in this course" in html
    assert "at most 5 per student" in html


def test_many_rows_show_a_progress_bar_and_keep_the_totals(tmp_path, capsys):
    from scip_jupyter.allocations import usage_cli

    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    ledger = Ledger(url, clock=Clock())
    start = D0 + dt.timedelta(hours=1)
    ledger.record_slurm_jobs([
        SlurmJobRecord("local-slurm", str(i), f"u{i % 50}", "", "scip-user", "def-lab", "group:lab", "h100", 1, 1.0,
                       "COMPLETED", start, start + dt.timedelta(minutes=6))
        for i in range(usage_cli.PROGRESS_FROM + 500)
    ])
    ledger.dispose()
    assert usage_cli._progress(usage_cli.PROGRESS_FROM - 1) is None and usage_cli._progress(10) is None
    assert cli(["usage", "--ledger", url, "--since", "2026-11-02", "--until", "2026-11-03"]) == 0
    assert f"{(usage_cli.PROGRESS_FROM + 500) * 0.1:.2f}" in capsys.readouterr().out
