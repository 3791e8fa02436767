"""Data jurisdiction at ARC scale-up: the spawn's rule (storage.check_jurisdiction), a second caller."""

from pathlib import Path

import pytest

from scip_jupyter.arc.cluster import ARCCluster, held_data
from scip_jupyter.arc.presets import ARCJurisdictionError, ARCRequestError, check_data_jurisdiction, load_presets
from scip_jupyter.i18n import use_locale
from scip_jupyter.storage import (
    DATA_JURISDICTIONS_ENV,
    JurisdictionError,
    parse_data_jurisdictions,
    parse_storage,
    storage_mounts,
)

ROOT = Path(__file__).resolve().parents[2]
PRESETS = load_presets(ROOT / "hub_config" / "arc.yaml")  # local-slurm CA, fir CA-BC, nibi/trillium CA-ON, rorqual/narval CA-QC
CONNECT_BACK = [p for p in PRESETS.clusters if p.network.mode == "connect-back"]


@pytest.mark.parametrize(
    "preset, data, fitting",
    [
        ("local-slurm", {}, None),  # no project data in reach: nothing to keep anywhere
        ("local-slurm", {"def-demo": "CA"}, None),
        ("fir", {"lab-bc": "CA-BC"}, None),
        ("fir", {"lab-bc": "CA-BC", "def-smith": "CA"}, None),  # a region is within its country
        ("local-slurm", {"lab-bc": "CA-BC"}, ["fir"]),  # a CA-wide site may be outside BC
        ("nibi", {"lab-bc": "CA-BC"}, ["fir"]),
        ("fir", {"lab-qc": "CA-QC"}, []),  # no connect-back preset in Quebec
        ("fir", {"lab-bc": "CA-BC", "lab-on": "CA-ON"}, []),  # no cluster in both
    ],
)
def test_scale_up_refused_where_project_data_may_not_go(preset, data, fitting):
    p = PRESETS.get(preset)
    if fitting is None:
        check_data_jurisdiction(p, data, CONNECT_BACK)
        return
    with pytest.raises(ARCJurisdictionError) as info:
        check_data_jurisdiction(p, data, CONNECT_BACK)
    exc = info.value
    assert isinstance(exc, ARCRequestError) and isinstance(exc, JurisdictionError)  # launcher and spawn catch it
    assert (exc.field, exc.status, exc.allowed) == ("project", 403, fitting)
    message = str(exc)
    refused = next(k for k in sorted(data) if not p.jurisdiction.startswith(data[k]))
    assert message.startswith(f"project: the data of {refused} must stay in {data[refused]}; ")
    assert f"cluster preset '{preset}' (site {p.site}) runs in {p.jurisdiction}." in message
    if fitting:
        assert message.endswith(f"Choose one in {data[refused]}: {', '.join(fitting)}")
    else:
        assert message.endswith("No cluster preset runs there; ask your project lead.")


def test_refusal_is_in_french_too():
    with use_locale("fr"), pytest.raises(ARCJurisdictionError) as info:
        check_data_jurisdiction(PRESETS.get("local-slurm"), {"lab-bc": "CA-BC"}, CONNECT_BACK)
    assert "préréglage de grappe 'local-slurm'" in str(info.value) and "fir" in str(info.value)


@pytest.mark.parametrize(
    "text, expected",
    [
        (None, {}),
        ("", {}),
        ("lab-bc=CA-BC,def-smith=CA", {"lab-bc": "CA-BC", "def-smith": "CA"}),
        ("a%2Cb%3D%7Bx%7D=CA", {"a,b={x}": "CA"}),  # any hub group name survives
        ("lab-bc", ValueError),
        ('{"lab": "CA"}', ValueError),  # not JSON: KubeSpawner would expand the braces
        ("lab=C", ValueError),
        ("=CA", ValueError),
        ("lab=CA,lab=CA-BC", ValueError),
        ("lab=CA,", ValueError),
    ],
)
def test_data_jurisdictions_from_the_environment_are_validated(text, expected):
    if expected is ValueError:
        with pytest.raises(ValueError, match=DATA_JURISDICTIONS_ENV):
            parse_data_jurisdictions(text)
        with pytest.raises(ARCRequestError) as info:  # fails closed, naming the variable
            held_data({DATA_JURISDICTIONS_ENV: text})
        assert info.value.field == DATA_JURISDICTIONS_ENV and info.value.status == 403
    else:
        assert parse_data_jurisdictions(text) == expected
        assert held_data({} if text is None else {DATA_JURISDICTIONS_ENV: text}) == expected


def test_spawner_hands_the_notebook_the_table_the_spawn_check_used():
    config = parse_storage({"projects": {"lab-bc": {"claim": "p", "jurisdiction": "CA-BC"},
                                         "def-smith": {"claim": "p", "jurisdiction": "CA"},
                                         "other": {"claim": "p", "jurisdiction": "CA-QC"}}})
    _volumes, _mounts, env = storage_mounts(config, "alice", ["lab-bc", "def-smith"], where="profile 'x'",
                                            jurisdiction="CA-BC")
    assert env[DATA_JURISDICTIONS_ENV] == "def-smith=CA,lab-bc=CA-BC"  # mounted ones only
    assert "{" not in env[DATA_JURISDICTIONS_ENV]  # KubeSpawner expands {...} in environment values
    assert parse_data_jurisdictions(env[DATA_JURISDICTIONS_ENV]) == {"lab-bc": "CA-BC", "def-smith": "CA"}
    assert DATA_JURISDICTIONS_ENV not in storage_mounts(config, "bob", ["nobody"])[2]


@pytest.mark.parametrize("source", ["argument", "environment"])
def test_arc_cluster_refuses_before_transport_or_submission(source, monkeypatch):
    class NoTransport:  # a transport that must never be asked anything
        kind = "local"

        def __getattr__(self, name):
            raise AssertionError(f"the transport was used ({name}) for a refused preset")

    kwargs = dict(presets=PRESETS, user="alice", user_accounts=["def-demo"], transport=NoTransport(), n_workers=2)
    if source == "argument":
        kwargs["data_jurisdictions"] = {"lab-bc": "CA-BC"}
    else:
        monkeypatch.setenv(DATA_JURISDICTIONS_ENV, "lab-bc=CA-BC")
    with pytest.raises(ARCJurisdictionError, match=r"lab-bc must stay in CA-BC; cluster preset 'local-slurm'.*fir"):
        ARCCluster("local-slurm", **kwargs)
