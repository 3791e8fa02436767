"""SCIPSpawnerMixin with allocations: reserve before the backend starts, release on stop, death and failure.

The mixin runs on a minimal JupyterHub Spawner backend that counts its starts
and stops; the ledger is a real SQLite file. The hub-level path (REST, form,
real servers) is in tests/integration/test_allocations_hub.py.
"""

from __future__ import annotations

import asyncio
import re

import pytest
import yaml
from jupyterhub.objects import Hub
from jupyterhub.spawner import Spawner
from tornado import web

from scip_jupyter.allocations.ledger import Ledger, ledger_for
from scip_jupyter.spawners.base import SCIPSpawnerMixin
from tests.fixtures.common import ROOT
from tests.fixtures.k8s import make_user

CATALOG = ROOT / "hub_config" / "catalog.yaml"
QUOTAS = {"groups": {"researchers": {"max_gpus": {"h100": 1}, "gpu_hours": 100}}}


class CountingBackend(Spawner):
    """Stands for LocalProcessSpawner / KubeSpawner: counts what reached it."""

    fail_start = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.starts = self.stops = 0
        self.hook_calls = 0

    async def start(self):
        self.starts += 1
        if self.fail_start:
            raise RuntimeError("backend could not start")
        return "http://127.0.0.1:1"

    async def stop(self, now=False):
        self.stops += 1

    async def poll(self):
        return None


class Under(SCIPSpawnerMixin, CountingBackend):
    pass


@pytest.fixture
def config_files(tmp_path):
    quotas = tmp_path / "allocations.yaml"
    quotas.write_text(yaml.safe_dump(QUOTAS))
    return quotas, f"sqlite:///{tmp_path / 'ledger.sqlite'}"


def make(config_files, user="ana", groups=("researchers",), options=None, cls=None, **traits):
    """A spawner for the default server of `user` (Spawner.name is "" without an ORM spawner)."""
    quotas, url = config_files
    settings = dict(catalog_path=str(CATALOG), allocations_path=str(quotas), ledger_url=url, reconcile_interval=0)
    settings.update(traits)
    spawner = (cls or Under)(
        hub=Hub(), user=make_user(user, *groups), api_token="x", oauth_client_id="unused", **settings
    )
    spawner.user_options = {"profile": "h100-full"} if options is None else options
    return spawner


def kinds(url, user):
    return [e.kind for e in ledger_for(url).events(user=user)]


async def test_refused_allocation_is_403_naming_profile_and_starts_nothing(config_files):
    first, second = make(config_files, "ana"), make(config_files, "bob")
    assert await first.start() == "http://127.0.0.1:1"
    with pytest.raises(web.HTTPError) as err:
        await second.start()
    assert err.value.status_code == 403
    assert err.value.log_message.startswith("profile: allocation exhausted for 'h100-full'")
    assert "max_gpus.h100 is 1 in allocations.yaml, 1 in use, 0 left" in err.value.log_message
    assert second.starts == 0
    assert kinds(config_files[1], "bob") == ["deny"]


async def test_stop_releases_for_the_next_user(config_files):
    first, second = make(config_files, "ana"), make(config_files, "bob")
    await first.start()
    await first.stop()
    await first.run_post_stop_hook()  # the hub calls it after every stop: nothing left to release
    assert await second.start()
    assert kinds(config_files[1], "ana") == ["reserve", "release"]


def _count_releases(monkeypatch, url):
    """Count the ledger's release transactions (each is a write: BEGIN IMMEDIATE and a commit)."""
    ledger, calls = ledger_for(url), []
    real = ledger.release
    monkeypatch.setattr(ledger, "release", lambda *a, **k: calls.append(a) or real(*a, **k))
    return calls


async def test_a_stop_writes_the_ledger_once_not_once_per_hook(config_files, monkeypatch):
    releases = _count_releases(monkeypatch, config_files[1])
    spawner = make(config_files, "ana")
    for _ in range(3):  # start, stop, post-stop hook: as the hub runs them
        await spawner.start()
        await spawner.stop()
        await spawner.run_post_stop_hook()
    assert len(releases) == 3  # one per stop (was two: stop() and the hook)
    assert kinds(config_files[1], "ana") == ["reserve", "release"] * 3


async def test_a_fresh_spawner_still_releases_what_a_dead_hub_left(config_files, monkeypatch):
    await make(config_files, "ana").start()  # the hub that reserved this dies here
    releases = _count_releases(monkeypatch, config_files[1])
    await make(config_files, "ana").run_post_stop_hook()  # the restarted hub's spawner
    assert len(releases) == 1 and ledger_for(config_files[1]).active() == []


async def test_a_failed_release_is_tried_again_at_the_hook(config_files, monkeypatch):
    spawner = make(config_files, "ana")
    await spawner.start()
    ledger = ledger_for(config_files[1])
    real = ledger.release
    monkeypatch.setattr(ledger, "release", lambda *a, **k: (_ for _ in ()).throw(OSError("locked")))
    await spawner.stop()  # logged, not raised
    monkeypatch.setattr(ledger, "release", real)
    await spawner.run_post_stop_hook()
    assert ledger.active() == []


async def test_a_server_that_died_is_released_by_the_post_stop_hook(config_files):
    calls = []
    first = make(config_files, "ana", post_stop_hook=lambda spawner: calls.append(spawner.user.name))
    await first.start()
    await first.run_post_stop_hook()  # JupyterHub skips stop() when poll() says the server is gone
    assert first.stops == 0 and calls == ["ana"]  # the deployment's own hook still runs
    assert kinds(config_files[1], "ana") == ["reserve", "release"]
    assert ledger_for(config_files[1]).active() == []


async def test_a_start_that_fails_releases_at_once(config_files):
    first = make(config_files, "ana")
    first.fail_start = True
    with pytest.raises(RuntimeError):
        await first.start()
    assert kinds(config_files[1], "ana") == ["reserve", "release"]
    assert ledger_for(config_files[1]).events(user="ana")[-1].message == "start failed"


async def test_invalid_options_are_refused_before_the_ledger(config_files):
    spawner = make(config_files, "sam", groups=("students",))
    with pytest.raises(web.HTTPError) as err:
        await spawner.start()
    assert err.value.status_code == 403 and "not allowed for your groups" in err.value.log_message
    assert kinds(config_files[1], "sam") == []


async def test_without_a_quota_file_nothing_is_recorded(config_files, tmp_path):
    spawner = make(config_files, "ana", allocations_path="")
    assert spawner.scip_ledger is None
    await spawner.start()
    await spawner.stop()
    assert kinds(config_files[1], "ana") == []


async def test_sweep_releases_servers_the_hub_does_not_run(config_files):
    class Swept(Under):
        def scip_running_servers(self):
            return {("bob", "")}

    stale = make(config_files, "ghost")
    await stale.start()  # a hub that died left this holding behind
    Swept._scip_last_sweep = {}
    spawner = make(config_files, "bob", cls=Swept, reconcile_interval=300)
    assert await spawner.start()  # the ghost's H100 was released first
    assert kinds(config_files[1], "ghost") == ["reserve", "release"]
    assert ledger_for(config_files[1]).events(user="ghost")[-1].message == "the hub does not run this server"


async def test_ledger_failure_refuses_with_503_without_the_url(config_files, monkeypatch):
    spawner = make(config_files, "ana")

    def broken(*args, **kwargs):
        raise OSError("disk on fire at /secret/path")

    monkeypatch.setattr(Ledger, "reserve", broken)
    with pytest.raises(web.HTTPError) as err:
        await spawner.start()
    assert err.value.status_code == 503
    assert "OSError" in err.value.log_message and "secret" not in err.value.log_message
    assert spawner.starts == 0


async def test_ledger_that_cannot_be_opened_refuses_in_words_and_stop_still_works(config_files):
    """A PostgreSQL ledger down when the hub started (nothing listens on its port): the spawn gets the
    503 in the person's language, nothing reaches the backend, the URL's host, port and password stay
    out of it; a stop does not fail on the ledger either."""
    from scip_jupyter.i18n import use_locale
    from tests.fixtures.common import free_port

    port = free_port()
    url = f"postgresql+psycopg://scip:not-this-password@127.0.0.1:{port}/scip"
    for language, words in (("en", "allocations: the ledger is not available (its database does not answer "
                                   "or is busy); nothing was reserved and no server was started"),
                            ("fr", "allocations : le registre des allocations n'est pas disponible (sa base de "
                                   "données ne répond pas ou est occupée) ; rien n'a été réservé")):
        spawner = make(config_files, "ana", ledger_url=url)
        with use_locale(language), pytest.raises(web.HTTPError) as err:
            await spawner.start()
        message = err.value.log_message
        assert err.value.status_code == 503 and words in message, message
        assert str(port) not in message and "not-this-password" not in message and "127.0.0.1" not in message
        assert spawner.starts == 0
        await spawner.stop()  # releasing against a ledger that cannot be opened: logged, not raised
        assert spawner.stops == 1


# --- the form ---------------------------------------------------------------------------------------


def card(page: str, slug: str) -> str:
    m = re.search(rf'<div class="scip-profile[^"]*"[^>]*>\s*<input[^>]*value="{slug}".*?</div>', page, re.S)
    assert m, page
    return m.group(0)


async def test_form_shows_cost_free_count_and_allocation_left(config_files):
    class WithCluster(Under):
        async def scip_cluster_availability(self, profiles):
            return {"cpu-small": None, "mig-1g-10gb": 3, "mig-3g-40gb": 0, "h100-full": 2}

    holder = make(config_files, "ana")
    await holder.start()
    viewer = make(config_files, "bob", cls=WithCluster, availability_timeout=60)
    page = await viewer.scip_options_form()
    h100 = card(page, "h100-full")
    assert 'data-available="no"' in h100
    assert "Free on the cluster now: 2" in h100
    assert "Your allocation: used up: group researchers: 0 of 1 × h100 free, 100 of 100 GPU-hours left" in h100
    mig3 = card(page, "mig-3g-40gb")
    assert 'data-available="no"' in mig3 and "None free on the cluster now" in mig3
    assert "Your allocation: not metered" in mig3
    assert "Cost: 3/7 GPU-hour per hour" in mig3
    cpu = card(page, "cpu-small")
    assert 'data-available="yes"' in cpu and "Free on the cluster" not in cpu
    await holder.stop()
    assert 'data-available="yes"' in card(await viewer.scip_options_form(), "h100-full")


async def test_form_does_not_wait_for_a_slow_cluster(config_files):
    started, answer = [], asyncio.Event()

    class Hung(Under):
        async def scip_cluster_availability(self, profiles):
            started.append(1)
            await answer.wait()  # does not answer while the form is rendered
            return {}

    spawner = make(config_files, "bob", cls=Hung, availability_timeout=0.05)
    page = await spawner.scip_options_form()
    assert started == [1]
    assert "Free on the cluster now: unknown" in card(page, "h100-full")
    assert "Your allocation: group researchers: 1 of 1 × h100 free" in card(page, "h100-full")  # the ledger answered
    answer.set()  # let the background read finish


async def test_running_servers_come_from_the_hub_database(config_files):
    """The sweep's view of the hub: spawners with a server row (running or starting)."""
    from dataclasses import dataclass

    from jupyterhub import orm

    from tests.fixtures.k8s import MockUser

    db = orm.new_session_factory("sqlite://")()
    for name, servers in (("ana", {"": True, "big": False}), ("bob", {"": True})):
        user = orm.User(name=name)
        db.add(user)
        for server, running in servers.items():
            db.add(orm.Spawner(user=user, name=server, server=orm.Server() if running else None))
    db.commit()

    @dataclass
    class HubUser(MockUser):
        db: object = None

    spawner = Under(
        hub=Hub(), user=HubUser(name="ana", db=db), api_token="x", oauth_client_id="unused",
        catalog_path=str(CATALOG),
    )
    assert spawner.scip_running_servers() == {("ana", ""), ("bob", "")}
    assert make(config_files, "ana").scip_running_servers() is None  # outside a hub: no sweep
