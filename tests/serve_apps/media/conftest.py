"""Fixtures: the four fake provider servers (once per session), a MediaConfig pointing
at them, and a MediaService over a real SQLite catalog."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import pytest
import pytest_asyncio
from pydantic import SecretStr

from catalog.port import AsyncLocalCatalog
from catalog.store import CatalogStore
from serve_apps.auth import Principal
from serve_apps.media.config import PROVIDER_ENV, MediaConfig, ProviderSettings
from serve_apps.media.service import MediaService
from tests.serve_apps.media.fakes import openai_api, replicate_api, runway_api, stability_api
from tests.serve_apps.media.fakes.common import FakeServer

ALICE = Principal("alice", "user")
BOB = Principal("bob", "user")


@dataclass
class Fakes:
    replicate: FakeServer
    stability: FakeServer
    openai: FakeServer
    runway: FakeServer
    replicate_secret: str

    def all(self) -> list[FakeServer]:
        return [self.replicate, self.stability, self.openai, self.runway]

    def reset(self) -> None:
        for server in self.all():
            server.state.faults.clear()
            server.state.calls.clear()
            server.state.job_s = 0.3
            server.state.latency_s = 0.0
            server.state.file_ttl_s = 3600.0


@pytest.fixture(scope="session")
def fakes():
    rep, secret = replicate_api.start()
    servers = Fakes(rep, stability_api.start(), openai_api.start(), runway_api.start(), secret)
    yield servers
    for server in servers.all():
        server.stop()


@pytest.fixture(autouse=True)
def _reset_fakes(request):
    if "fakes" in request.fixturenames:
        request.getfixturevalue("fakes").reset()


def make_config(fakes: Fakes, media_dir, *, missing: tuple[str, ...] = (),
                **overrides) -> MediaConfig:
    """Settings pointing every provider at its fake; providers in ``missing`` get no
    token. Short waits keep tests quick."""
    base = {"replicate": fakes.replicate.url, "stability": fakes.stability.url,
            "openai": fakes.openai.url + "/v1", "runway": fakes.runway.url}
    providers = {}
    for name, url in base.items():
        server = getattr(fakes, name)
        providers[name] = ProviderSettings(
            base_url=url, token_env=PROVIDER_ENV[name][0],
            token=None if name in missing else SecretStr(server.state.token),
            webhook_secret=SecretStr(fakes.replicate_secret) if name == "replicate" else None)
    values = {
        "providers": providers, "media_dir": media_dir, "poll_interval_s": 0.05,
        "job_timeout_s": 20.0,
        "retry": {"max_attempts": 3, "base_delay_s": 0.01, "max_delay_s": 0.05,
                  "max_retry_after_s": 2.0},
        "cooldown": {"failures": 2, "seconds": 60.0},
    } | overrides
    return MediaConfig(**values)


@pytest.fixture(scope="session")
def _migrated_db(tmp_path_factory):
    """One SQLite catalog migrated to head; tests get copies (migrating costs ~1 s)."""
    path = tmp_path_factory.mktemp("media-db") / "catalog.db"
    CatalogStore.open(f"sqlite:///{path}").close()
    return path


@pytest.fixture
def media_store(_migrated_db, tmp_path):
    """A fresh catalog (a copy of the migrated template) on SQLite."""
    path = tmp_path / "catalog.db"
    shutil.copyfile(_migrated_db, path)
    store = CatalogStore.open(f"sqlite:///{path}", migrate=False)
    yield store
    store.close()


@pytest_asyncio.fixture(loop_scope="session")
async def service(fakes, media_store, tmp_path):
    svc = MediaService(make_config(fakes, tmp_path / "media"), AsyncLocalCatalog(media_store))
    yield svc
    await svc.close()  # writes the buffered usage records
