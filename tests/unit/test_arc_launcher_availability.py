"""The ARC launcher greys out presets this server cannot use, as the spawn form greys profiles.

A preset is unavailable when ARCCluster would refuse it whatever the request: in-job network
mode, no account of the person's on it, or a site outside the jurisdiction of a project whose
data the server holds. The reason shown is that refusal, word for word (checked against a real
ARCCluster whose transport must never be used), in English and French; the default is the
first preset that is available, and a greyed one cannot be chosen or launched.
"""

from __future__ import annotations

import pytest

from scip_jupyter.arc.cluster import ARCCluster
from scip_jupyter.arc.launcher import LauncherModel
from scip_jupyter.arc.presets import ARCJurisdictionError, ARCPresetRefused, ARCRequestError, PresetFile, example_preset
from scip_jupyter.i18n import use_locale
from scip_jupyter.storage import DATA_JURISDICTIONS_ENV
from scip_widgets import LauncherView


def presets() -> PresetFile:
    no_account = {"patterns": ["def-*"], "users": {}}
    return PresetFile(clusters=[
        example_preset(name="local", site="scip-local", jurisdiction="CA"),
        example_preset(name="fir", site="sfu", jurisdiction="CA-BC", display_name="Fir (SFU)"),
        example_preset(name="nibi", site="uwaterloo", jurisdiction="CA-ON"),
        example_preset(name="rorqual", site="calculquebec", jurisdiction="CA-QC", network={"mode": "in-job"}),
        example_preset(name="closed", site="elsewhere", jurisdiction="CA", accounts=no_account),
    ])


def accounts(preset):
    """Alice's accounts as the preset gives them (example_preset: def-alice for everyone; 'closed': none)."""
    return preset.accounts.configured_for("alice")


class Launched:
    """A cluster factory that records what it was asked (greyed presets must never get here)."""

    calls: list[dict] = []

    def __init__(self, **kwargs):
        Launched.calls.append(kwargs)

    def scale(self, n):
        pass

    def close(self):
        pass


class NoTransport:  # ARCCluster must refuse before asking Slurm anything
    kind = "local"

    def __getattr__(self, name):
        raise AssertionError(f"the transport was used ({name}) for a refused preset")


def model(data=None, **kwargs) -> LauncherModel:
    return LauncherModel(presets(), accounts=accounts, cluster_factory=Launched, user="alice",
                         data_jurisdictions=data, **kwargs)


def arc_cluster_refusal(name: str, data: dict[str, str]) -> ARCRequestError:
    with pytest.raises(ARCRequestError) as info:
        ARCCluster(name, presets=presets(), user="alice", user_accounts=accounts(presets().get(name)), transport=NoTransport(),
                   data_jurisdictions=data)
    return info.value


@pytest.mark.parametrize(
    "data, greyed, default",
    [
        ({}, {"rorqual", "closed"}, "local"),  # no project data: only in-job and no-account presets
        ({"def-smith": "CA"}, {"rorqual", "closed"}, "local"),  # CA data may go to every CA site
        ({"lab-bc": "CA-BC"}, {"local", "nibi", "rorqual", "closed"}, "fir"),  # a CA-wide site may be outside BC
        ({"lab-on": "CA-ON"}, {"local", "fir", "rorqual", "closed"}, "nibi"),
        ({"lab-bc": "CA-BC", "lab-on": "CA-ON"}, {"local", "fir", "nibi", "rorqual", "closed"}, "local"),  # none fits
        ({"lab-qc": "CA-QC"}, {"local", "fir", "nibi", "rorqual", "closed"}, "local"),  # Quebec: in-job only
    ],
)
def test_presets_that_cannot_take_the_projects_data_are_greyed_and_the_default_is_available(data, greyed, default):
    m = model(data)
    assert set(m.unavailable) == greyed
    assert m.available_presets() == [n for n in presets().names() if n not in greyed]
    assert m.preset == default and m.request is not None
    assert (m.preset in m.unavailable) == (not m.available_presets())  # greyed only when nothing is available


@pytest.mark.parametrize(
    "name, data",
    [
        ("local", {"lab-bc": "CA-BC"}),
        ("nibi", {"lab-bc": "CA-BC"}),
        ("fir", {"lab-qc": "CA-QC"}),  # nothing fits: ARCCluster says so, and so does the launcher
        ("fir", {"lab-bc": "CA-BC", "lab-on": "CA-ON"}),
        ("rorqual", {}),  # in-job: workers could not connect back
        ("rorqual", {"lab-qc": "CA-QC"}),  # in-job comes first, in ARCCluster as in the launcher
        ("closed", {}),  # no account
    ],
)
def test_greyed_reason_is_the_refusal_arc_cluster_gives(name, data):
    m = model(data)
    refusal = arc_cluster_refusal(name, data)
    if isinstance(refusal, ARCPresetRefused):  # jurisdiction, in-job: the message names what fits itself
        assert m.unavailable[name] == str(refusal)
    else:  # the validator's: field and problem (the form's 'allowed values' tail is left out)
        assert (refusal.field, m.unavailable[name]) == ("account", f"account: {refusal.problem}")
    with pytest.raises(ARCRequestError) as chosen:  # choosing it gives that same refusal
        m.set("preset", name) if m.preset != name else m.launch()
    assert str(chosen.value) == str(refusal) and chosen.value.status == refusal.status


def test_jurisdiction_reason_names_project_both_jurisdictions_and_what_fits():
    reason = model({"lab-bc": "CA-BC"}).unavailable["nibi"]
    assert reason == ("project: the data of lab-bc must stay in CA-BC; cluster preset 'nibi' (site uwaterloo) "
                      "runs in CA-ON. Choose one in CA-BC: fir")
    assert isinstance(model({"lab-bc": "CA-BC"})._refusals["nibi"], ARCJurisdictionError)


def test_choosing_a_greyed_preset_is_refused_and_changes_nothing():
    m = model({"lab-bc": "CA-BC"})
    m.set("walltime", "12:00:00")
    before = {f: getattr(m, f) for f in ("preset", "account", "partition", "walltime", "workers")}
    for attempt in (lambda: m.set("preset", "local"), lambda: setattr(m, "preset", "nibi")):
        with pytest.raises(ARCJurisdictionError) as info:
            attempt()
        assert info.value.field == "project" and info.value.status == 403 and info.value.allowed == ["fir"]
        assert {f: getattr(m, f) for f in before} == before


def test_asking_for_a_greyed_preset_by_name_is_refused():
    with pytest.raises(ARCPresetRefused, match="network mode in-job"):
        model({}, preset="rorqual")
    with pytest.raises(ARCRequestError, match="unknown preset 'nowhere'"):
        model({}, preset="nowhere")


def test_a_bad_first_choice_is_refused_on_the_default_preset_not_moved_elsewhere():
    wide = example_preset(name="wide", walltime={"tiers": ["03:00:00"], "maximum": "9-00:00:00"})
    with pytest.raises(ARCRequestError) as info:
        LauncherModel(PresetFile(clusters=[example_preset(), wide]), accounts=accounts, user="alice",
                      data_jurisdictions={}, walltime="8-00:00:00")
    assert info.value.field == "walltime" and "cluster 'demo'" in str(info.value)


def test_nothing_available_shows_every_preset_greyed_and_launch_refused():
    Launched.calls.clear()
    m = model({"lab-qc": "CA-QC"})
    v = LauncherView(m)
    v.widget()
    assert v.parts.buttons["launch"].disabled
    with pytest.raises(ARCJurisdictionError, match="lab-qc must stay in CA-QC"):
        m.launch()
    v.parts.buttons["launch"].click()  # the view never raises into the comm
    assert Launched.calls == [] and m.phase == "idle"


def test_launch_on_an_available_preset_passes_the_table_it_was_greyed_by():
    Launched.calls.clear()
    m = model({"lab-bc": "CA-BC"})
    m.launch()
    (kwargs,) = Launched.calls
    assert kwargs["preset"] == "fir" and kwargs["data_jurisdictions"] == {"lab-bc": "CA-BC"}


def test_the_servers_own_table_is_read_from_its_environment(monkeypatch):
    monkeypatch.setenv(DATA_JURISDICTIONS_ENV, "lab-bc=CA-BC")
    m = model(None)
    assert m.preset == "fir" and set(m.unavailable) == {"local", "nibi", "rorqual", "closed"}
    monkeypatch.delenv(DATA_JURISDICTIONS_ENV)
    assert model(None).preset == "local"


def test_an_unreadable_table_greys_every_preset_fails_closed(monkeypatch):
    monkeypatch.setenv(DATA_JURISDICTIONS_ENV, '{"lab": "CA"}')  # JSON, not project=jurisdiction pairs
    m = model(None)
    assert set(m.unavailable) == set(presets().names())
    assert all(r.startswith(f"{DATA_JURISDICTIONS_ENV}: ") for r in m.unavailable.values())
    with pytest.raises(ARCRequestError) as info:
        m.launch()
    assert info.value.field == DATA_JURISDICTIONS_ENV and info.value.status == 403


def test_widget_lists_greyed_presets_marked_with_their_reasons():
    m = model({"lab-bc": "CA-BC"})
    v = LauncherView(m)
    v.widget()
    labels = dict((value, label) for label, value in v.parts.fields["preset"].options)
    assert labels == {"local": "local (cannot be used here)", "fir": "Fir (SFU)", "nibi": "nibi (cannot be used here)",
                      "rorqual": "rorqual (cannot be used here)", "closed": "closed (cannot be used here)"}
    notes = v.parts.preset_notes.value
    assert notes.count('aria-disabled="true"') == 4 and 'data-preset="fir"' not in notes
    assert "lab-bc must stay in CA-BC; cluster preset &#39;nibi&#39; (site uwaterloo) runs in CA-ON" in notes
    assert not v.parts.buttons["launch"].disabled
    assert 'data-preset="nibi"' in v._repr_html_()  # the HTML fallback lists them too


def test_choosing_a_greyed_preset_in_the_widget_shows_why_and_goes_back():
    m = model({"lab-bc": "CA-BC"})
    v = LauncherView(m)
    v.widget()
    v.parts.fields["preset"].value = "nibi"
    assert m.preset == "fir" and v.parts.fields["preset"].value == "fir"
    assert "lab-bc must stay in CA-BC" in v.parts.errors["preset"].value
    assert "scip-error" in v.parts.errors["preset"].value


def test_greyed_presets_in_french():
    with use_locale("fr"):
        m = model({"lab-bc": "CA-BC"})
        v = LauncherView(m)
        v.widget()
        labels = dict((value, label) for label, value in v.parts.fields["preset"].options)
        notes = v.parts.preset_notes.value
        no_account = model({}).unavailable["closed"]
    assert labels["nibi"] == "nibi (inutilisable ici)"
    assert "Grappes que vous ne pouvez pas utiliser depuis ce serveur" in notes
    assert "préréglage de grappe &#39;nibi&#39;" in notes
    assert "exécute Dask dans une seule tâche Slurm" in m.unavailable["rorqual"]
    assert no_account == "account: vous n’avez aucun compte sur la grappe 'closed'"


def test_reasons_are_escaped():
    hostile = "<script>alert(1)</script>"
    m = model({hostile: "CA-BC"})
    v = LauncherView(m)
    v.widget()
    for html in (v.parts.preset_notes.value, v._repr_html_()):
        assert hostile not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
