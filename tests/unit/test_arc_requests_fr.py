"""ARC's refusals and Slurm failures read in the researcher's language (issue 14).

The request validator (presets.py), ARCCluster's arguments (compat.py), failed submissions
(cluster.py) and a Slurm that does not answer (transport.py) speak English or French, as the
notebook's or the request's language says (scip_jupyter.i18n); the field and the machine-readable
allowed values (ranges, tiers, names) stay the same in both.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import pytest

from scip_jupyter.arc.cluster import ARCCluster, submit_error
from scip_jupyter.arc.presets import ARCRequestError, check_scale, example_preset, load_presets, validate_request
from scip_jupyter.arc.tags import JobTags
from scip_jupyter.arc.transport import LocalTransport, SlurmCommandError, SlurmUnavailable, Transport
from scip_jupyter.i18n import use_locale
from tests.unit.test_arc_dropin import RecordingSlurm

ROOT = Path(__file__).resolve().parents[2]
PRESETS = load_presets(ROOT / "hub_config" / "arc.yaml")
TAGS = JobTags(user="alice", server="lab", project="def-demo", site="scip-local", jurisdiction="CA")
TIERS = ["03:00:00", "12:00:00", "1-00:00:00", "3-00:00:00", "7-00:00:00"]


@pytest.fixture(autouse=True)
def private_state(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("SCIP_ARC_REGISTRY", str(tmp_path / "arc-jobs.sqlite"))
    for var in ("SCIP_LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)


def bad_walltime(transport: Transport) -> ARCRequestError:
    with pytest.raises(ARCRequestError) as err:
        ARCCluster("local-slurm", presets=PRESETS, user="alice", user_accounts=["def-demo"], tags=TAGS,
                   transport=transport, walltime="8-00:00:00")
    return err.value


def test_arccluster_with_a_bad_walltime_refuses_in_french_naming_the_field_and_the_allowed_values():
    transport = RecordingSlurm()
    with use_locale("fr"):
        exc = bad_walltime(transport)
        text = str(exc)
    assert exc.field == "walltime"
    assert exc.problem == "8-00:00:00 dépasse le maximum de la grappe 'local-slurm' (7-00:00:00)"
    assert exc.allowed == [*TIERS, "ou toute durée jusqu’à 7-00:00:00"]
    assert text == ("walltime : 8-00:00:00 dépasse le maximum de la grappe 'local-slurm' (7-00:00:00) ; "
                    "valeurs permises : " + ", ".join(TIERS) + ", ou toute durée jusqu’à 7-00:00:00")
    assert transport.submitted == []


def test_the_same_refusal_in_english_keeps_its_wording():
    exc = bad_walltime(RecordingSlurm())
    assert str(exc) == ("walltime: 8-00:00:00 is over the maximum of cluster 'local-slurm' (7-00:00:00); "
                        "allowed values: " + ", ".join(TIERS) + ", or any time up to 7-00:00:00")


def test_a_notebook_whose_environment_says_french_gets_french(monkeypatch):
    """No use_locale(): a kernel's language comes from its environment (LANG, as the spawner sets it)."""
    monkeypatch.setenv("LANG", "fr_CA.UTF-8")
    exc = bad_walltime(RecordingSlurm())
    assert "dépasse le maximum de la grappe" in exc.problem and "valeurs permises" in str(exc)


PRESET = example_preset()
NO_GPUS = example_preset(name="cpu-only", gpu_types=[], gpu_partition=None)

#: (preset, request, field, English problem, French problem, allowed values in French)
REQUESTS = [
    (PRESET, {"cores": "four"}, "cores", "'four' is not a whole number", "'four' n’est pas un nombre entier",
     ["1..64"]),
    (PRESET, {"cores": 500}, "cores", "500 is out of range", "500 est hors des limites permises", ["1..64"]),
    (PRESET, {"memory": "lots"}, "memory", "'lots' is not an amount of memory",
     "'lots' n’est pas une quantité de mémoire", ["par exemple 2GiB, 512MiB"]),
    (PRESET, {"memory": "1TiB"}, "memory", "1.00 TiB is out of range", "1.00 TiB est hors des limites permises",
     ["jusqu’à 256GiB"]),
    (NO_GPUS, {"gpus": 1}, "gpus", "cluster 'cpu-only' has no GPUs", "la grappe 'cpu-only' n’a pas de GPU", ["0"]),
    (PRESET, {"gpu_type": "a100"}, "gpu_type", "'a100' is not a GPU type on cluster 'demo'",
     "'a100' n’est pas un type de GPU de la grappe 'demo'", ["h100", "h100_1g.10gb"]),
    (PRESET, {"gpu_type": "h100_1g.10gb", "gpus": 2}, "gpus", "a MIG slice (h100_1g.10gb) is one per job",
     "une tranche MIG (h100_1g.10gb) se demande une seule par tâche", ["1"]),
    (PRESET, {"partition": "huge"}, "partition", "'huge' is not a partition of cluster 'demo'",
     "'huge' n’est pas une partition de la grappe 'demo'", ["cpu", "gpu"]),
    (PRESET, {"account": "def-bob"}, "account", "'def-bob' is not one of your accounts on cluster 'demo'",
     "'def-bob' n’est pas l’un de vos comptes sur la grappe 'demo'", ["def-alice"]),
    (PRESET, {"walltime": "soon"}, "walltime",
     "'soon' is not a Slurm time like 03:00:00, 2-00:00:00 or 90 (minutes)",
     "'soon' n’est pas une durée Slurm comme 03:00:00, 2-00:00:00 ou 90 (minutes)",
     ["03:00:00", "12:00:00", "1-00:00:00", "3-00:00:00", "7-00:00:00", "ou toute durée jusqu’à 7-00:00:00"]),
    (PRESET, {"colour": "red"}, "colour", "unknown field", "champ inconnu", None),
]


@pytest.mark.parametrize("preset, raw, field, english, french, allowed", REQUESTS,
                         ids=[f"{r[2]}:{r[3]}" for r in REQUESTS])
def test_request_refusals_read_in_both_languages_with_the_same_field(preset, raw, field, english, french, allowed):
    with pytest.raises(ARCRequestError) as en:
        validate_request(preset, raw, ["def-alice"])
    with use_locale("fr"), pytest.raises(ARCRequestError) as fr:
        validate_request(preset, raw, ["def-alice"])
    assert (en.value.field, en.value.problem) == (field, english)
    assert (fr.value.field, fr.value.problem, fr.value.status) == (field, french, en.value.status)
    if allowed is not None:
        assert fr.value.allowed == allowed
    assert len(fr.value.allowed) == len(en.value.allowed)


def test_a_scale_up_past_the_job_limit_reads_in_french():
    preset = example_preset(max_jobs_per_user=10)
    with use_locale("fr"), pytest.raises(ARCRequestError) as err:
        check_scale(preset, 12)
    assert err.value.field == "workers"
    assert err.value.problem == ("12 tâches dépassent la limite de la grappe 'demo' "
                                 "(10 tâches par personne ; chaque tâche d’un tableau compte)")
    assert err.value.allowed == ["0..10 tâches"]


def test_the_hubs_burst_api_answers_in_the_requests_language():
    from scip_jupyter.allocations.hub_api import BodyError, validate_body

    body = {"preset": "local-slurm", "gpus_per_job": 1, "jobs": 2, "walltime": "9-00:00:00"}
    with use_locale("fr"), pytest.raises(BodyError) as err:
        validate_body(body, PRESETS, "researcher1", [], None)
    with use_locale("fr"):
        answer = err.value.to_json()
    assert answer["field"] == "walltime"
    assert answer["message"].startswith("walltime : 9-00:00:00 dépasse le maximum de la grappe 'local-slurm'")


def test_a_slurm_client_that_is_missing_says_so_in_french_with_what_to_check():
    with use_locale("fr"):
        transport = LocalTransport("local-slurm")
        with pytest.raises(SlurmUnavailable) as err:
            asyncio.run(transport.run(["scip-no-such-sbatch", "--version"]))
        text = str(err.value)
    assert text == ("Slurm ne répond pas sur la grappe 'local-slurm' (scip-no-such-sbatch : scip-no-such-sbatch "
                    "n’est pas installé sur cet hôte). Vérifiez : que les commandes client de Slurm sont dans le PATH "
                    "(paquet Debian slurm-client)")
    assert transport.calls["scip-no-such-sbatch"] == 1


def test_every_transports_own_hint_is_french_in_a_french_notebook():
    from scip_jupyter.arc.transport import SSHTarget, SSHTransport

    with use_locale("fr"):
        hints = [LocalTransport("a").hint, SSHTransport("b", SSHTarget(host="login.example")).hint]
    with use_locale("en"):
        english = [LocalTransport("a").hint, SSHTransport("b", SSHTarget(host="login.example")).hint]
    assert all(h.startswith("que ") for h in hints), hints
    assert all(h.startswith("that ") for h in english), english


@pytest.mark.parametrize("workers, jobs", [(1, "tâche"), (3, "tâches")])
def test_a_failed_submission_reads_in_french(workers, jobs):
    when = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)
    refused = SlurmCommandError("local-slurm", ["sbatch"], 1, "sbatch: error: invalid partition specified: nope")
    down = SlurmUnavailable("fir", "sbatch", "no answer within 30s", "that robot.fir answers")
    with use_locale("fr"):
        refusal = submit_error("local-slurm", workers, refused, when).message
        silence = submit_error("fir", workers, down, when).message
    assert refusal.startswith(f"La soumission de {workers} {jobs} de worker à la grappe 'local-slurm' a échoué à "
                              "08:00:00 UTC : Slurm les a refusées (sbatch, code de sortie 1) : sbatch: error: "
                              "invalid partition specified: nope Vérifiez : la demande (compte, partition")
    assert silence.endswith("Slurm n’a pas répondu (sbatch : no answer within 30s). Vérifiez : that robot.fir answers")


class QuietCluster:
    """Stands in for ARCCluster behind the launcher: records scale/adapt/close, no Slurm."""

    def __init__(self, **kwargs):
        self.calls = []

    def scale(self, n):
        self.calls.append(("scale", n))

    def adapt(self, minimum, maximum):
        self.calls.append(("adapt", minimum, maximum))

    def close(self):
        self.calls.append(("close",))


def test_the_launchers_own_words_follow_the_language():
    from scip_jupyter.arc.launcher import LauncherModel

    said = {}
    for language in ("en", "fr"):
        with use_locale(language):
            m = LauncherModel(PRESETS, accounts=lambda p: ["def-demo"], cluster_factory=QuietCluster, user="alice",
                              workers=1, preset="local-slurm")
            m.launch()
            launched = m.message
            m.scale(3)
            scaled = m.message
            with pytest.raises(ARCRequestError) as err:
                m.adapt(5, 2)
            m.shutdown()
            said[language] = (launched, scaled, err.value.field, err.value.problem, err.value.allowed, m.message)
            assert m.cluster.calls == [("scale", 1), ("scale", 3), ("close",)]
    assert said["en"] == ("Launched on local-slurm: 1 worker requested.", "Scaling to 3 workers.", "minimum",
                          "5 must be between 0 and maximum (2)", ["0..2"],
                          "Cluster closed; its Slurm jobs were cancelled.")
    assert said["fr"] == ("Lancé sur local-slurm : 1 worker demandé.", "Passage à 3 workers.", "minimum",
                          "5 doit être entre 0 et le maximum (2)", ["0..2"],
                          "Grappe Dask fermée ; ses tâches Slurm ont été annulées.")


def test_an_in_job_run_refuses_a_bad_payload_in_french():
    from scip_jupyter.arc.injob import encode_payload

    with use_locale("fr"):
        with pytest.raises(ValueError) as neither:
            encode_payload()
        with pytest.raises(ValueError) as not_callable:
            encode_payload(3)
    assert str(neither.value).startswith("donnez soit func (un appelable), soit script")
    assert str(not_callable.value) == "func : 3 n’est pas appelable"
    with pytest.raises(ValueError, match=r"^func: 3 is not callable$"):
        encode_payload(3)


def test_the_rest_transport_names_an_option_it_cannot_pass_in_french():
    from scip_jupyter.arc.rest import SbatchOptionError, sbatch_request

    with use_locale("fr"):
        with pytest.raises(SbatchOptionError) as directive:
            sbatch_request(["sbatch"], "#!/bin/sh\n#SBATCH --uid=0\ntrue\n", {}, "/")
        with pytest.raises(SbatchOptionError) as no_script:
            sbatch_request(["sbatch"], None, {}, "/")
    assert str(directive.value).startswith("#SBATCH line : l’option sbatch --uid n’est pas prise en charge par le "
                                           "transport rest (prises en charge : --")
    assert str(no_script.value) == "aucun script sur l’entrée standard (et pas de --wrap)"
