"""Reclaimed GPU-hours: cull records summed per group and per course, and `scip-jupyter gpu`."""

from __future__ import annotations

import datetime as dt

from scip_jupyter.cli import main
from scip_jupyter.culling.cli import reclaimed_lines
from scip_jupyter.culling.records import CullRecord, Records
from scip_jupyter.i18n import use_locale

AT = dt.datetime(2026, 12, 3, 10)


def cull(user, account, hours, profile="h100-full", at=AT):
    return CullRecord(at, user, "", profile, account, 1.0, hours * 3600, hours, "GPU idle")


def fill(url):
    r = Records(url)
    for c in (cull("ana", "group:lab", 1.5), cull("bo", "group:lab", 0.5), cull("cy", "course:ml", 0.25, "mig-1g-10gb"),
              cull("ana", "group:lab", 9, at=dt.datetime(2026, 11, 20))):
        r.record_cull(c)
    return r


def test_reclaimed_hours_per_group_and_course(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.sqlite'}"
    r = fill(url)
    got = [(x.account, x.culls, x.gpu_hours) for x in r.reclaimed(since=dt.datetime(2026, 12, 1))]
    assert got == [("group:lab", 2, 2.0), ("course:ml", 1, 0.25)]
    lines = reclaimed_lines(url, dt.datetime(2026, 12, 1))
    assert lines[1].split() == ["group", "lab", "2.00", "(2", "culls)"] and lines[-1].split() == ["total", "2.25"]
    with use_locale("fr"):
        assert reclaimed_lines(url, dt.datetime(2026, 12, 1), project="ml")[1].split()[:3] == ["cours", "ml", "0.25"]
    r.dispose()


def test_gpu_verb_prints_reclaimed_and_culls(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'l.sqlite'}"
    fill(url).dispose()
    assert main(["gpu", "reclaimed", "--ledger", url, "--since", "2026-11-01"]) == 0
    out = capsys.readouterr().out
    assert "group lab" in out and "11.00" in out and "course ml" in out
    assert main(["gpu", "culls", "--ledger", url, "--user", "cy", "--since", "2026-12-01"]) == 0
    assert "cy/  mig-1g-10gb  course ml  idle 15 min  0.25 GPU-h" in capsys.readouterr().out
    assert main(["gpu", "reclaimed", "--ledger", url, "--since", "December"]) == 2


def test_usage_reports_reclaimed_hours_under_its_table(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'l.sqlite'}"
    fill(url).dispose()
    assert main(["usage", "--ledger", url, "--since", "2026-12-01", "--until", "2026-12-05"]) == 0
    out = capsys.readouterr().out
    assert "Reclaimed GPU-hours" in out and "group lab" in out and "2.00" in out
    assert main(["usage", "--ledger", url, "--since", "2026-12-01", "--until", "2026-12-05", "--user", "cy"]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if "course ml" in line]
    assert lines and lines[-1][2] == "0.25"


def test_home_page_reads_open_notices_in_the_persons_language(tmp_path):
    from scip_jupyter.culling.notices import open_notice_texts

    url = f"sqlite:///{tmp_path / 'l.sqlite'}"
    r = Records(url)
    r.post("budget-warning", "ana", account="group:lab")
    r.post("idle-warning", "bo", deadline=AT)
    r.dispose()
    assert open_notice_texts(url, "ana") == ["Your allocation lab has used 90% of its GPU-hours."]
    with use_locale("fr"):
        assert open_notice_texts(url, "bo")[0].startswith("Le GPU de votre serveur par défaut est inactif")
    assert open_notice_texts("sqlite:////nonexistent/dir/x.sqlite", "ana") == []
