"""A local Model Garden: one Ray head with the dashboard, the catalog actor and the Serve
apps (``garden up`` / ``garden down`` / ``garden status``).

Ports default to Ray 6380 (Redis owns 6379 on these machines), dashboard 8265 and
Serve HTTP 8000. Ray 2.60 enables token auth on new clusters; ``up`` uses
``RAY_AUTH_MODE=token`` unless the environment says otherwise, for the head, its
replicas (the gateway's job API calls) and the driver alike. The token lives in
``~/.ray/auth_token`` (or ``$RAY_AUTH_TOKEN_PATH``); ``ray start`` refuses to run without
one, so ``up`` first has ``ray get-auth-token --generate`` create it when missing. The
cluster's address, URLs and Ray temp folder are saved in ``$GARDEN_HOME/cluster.json``.

Each cluster gets its own short Ray temp folder (``/tmp/garden-ray-<port>-<random>``), and
every process ``ray start`` spawns (GCS, raylet, dashboard, its agents, the Ray client
server, workers) inherits ``GARDEN_RAY_TEMP_DIR=<that folder>``, so ``down`` (and a failed
``up``) stop only that cluster's processes, never ``ray stop``, which would stop every Ray
on the host. ``up`` checks its ports first, connects to the head it started by the
address that head recorded, and when a step fails keeps Ray's logs under
``$GARDEN_HOME/logs/`` (:mod:`cluster.startup`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from catalog.config import garden_home
from cluster.startup import (
    CLUSTER_ENV,
    ClusterStartError,
    Port,
    check_ports,
    failure,
    head_session,
    keep_logs,
    quote_logs,
    summary,
)

if TYPE_CHECKING:
    from cluster.serve_config import AppSpec
    from serve_apps.llm import LLMAppConfig

STATE_FILE = "cluster.json"
LOGS_DIR = "logs"  # under $GARDEN_HOME: the Ray logs of failed starts
#: Room for a busy machine (both cores taken, as right after a cold install); ``up`` sets
#: these for the head's processes unless the environment does, and they change nothing
#: on an idle machine. Ray starts its workers (tasks and actors: the catalog, Serve's
#: controller, proxy and replicas) at niceness 15 (``RAY_worker_niceness``,
#: ray/_private/ray_constants.py), below every other process: with 2 processes spinning
#: at the default niceness they got almost no CPU and ``up --no-media`` took 481 s (46 s
#: idle); at niceness 0, 59 s. Ray's own GCS, raylet and dashboard run at 0 as well.
WORKER_NICENESS_ENV = "RAY_worker_niceness"
#: Serve's controller replaces an HTTP proxy that is not ready within this many seconds
#: of its creation (5 by default, ray/serve/_private/constants.py), and ``serve.start``
#: then fails with ``ActorDiedError``: a starved proxy process took over a minute to
#: start. ``up`` gives the proxy as long as any of its steps (``timeout_s``).
PROXY_READY_ENV = "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S"
#: Where Ray's GCS keeps its tables when fault tolerance is on: an external Redis
#: (``host:port``), read by ``ray start --head`` (ray/_private/node.py).
REDIS_ADDRESS_ENV = "RAY_REDIS_ADDRESS"


@dataclass(frozen=True)
class LocalCluster:
    """Where a local Model Garden answers."""

    address: str
    dashboard_url: str
    api_url: str
    openai_base_url: str
    temp_dir: str
    apps: tuple[str, ...] = ()
    console_url: str | None = None  # the web console (cluster.deploy.CONSOLE_APP), if any


def home() -> Path:
    """The storage root of local clusters (``$GARDEN_HOME``): the catalog database,
    models, datasets, ``cluster.json`` and the files ``garden demo`` keeps."""
    return garden_home()


def state_path() -> Path:
    return garden_home() / STATE_FILE


def load_state() -> LocalCluster | None:
    """The cluster recorded by :func:`up`, or None when none is."""
    path = state_path()
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    data["apps"] = tuple(data.get("apps", ()))
    return LocalCluster(**data)


def _ray_cli() -> str:
    found = Path(sys.executable).with_name("ray")
    return str(found) if found.is_file() else (shutil.which("ray") or "ray")


def up(
    *, host: str = "127.0.0.1", ray_port: int = 6380, dashboard_port: int = 8265,
    http_port: int = 8000, agent_port: int = 52365, num_cpus: int | None = None,
    llm_model: str | None = None, llm_apps: Mapping[str, LLMAppConfig] | None = None,
    redis_address: str | None = None, redis_password: str | None = None,
    admin_key: str | None = None, media: bool = True,
    apps: Sequence[Callable[[str, str | None], AppSpec]] = (),
    timeout_s: float = 300.0, progress: Callable[[str], None] | None = None,
) -> LocalCluster:
    """Start the head, the catalog actor and the apps; record and return the URLs.

    ``agent_port`` is the dashboard agent's HTTP port (Ray's default 52365), which the
    job API submits through; when another Ray on the machine holds it, the job API
    answers "No available agent", so pass a free one there (0 lets the agent pick).
    ``admin_key`` (default ``$GARDEN_ADMIN_KEY``) becomes the bootstrap admin key of the
    gateway. ``media`` deploys the media router (image and video providers) too, and
    ``apps`` build the applications handed over (``garden``'s web console), deployed
    after the gateway (:func:`cluster.deploy.deploy_apps`). The catalog database is
    ``$GARDEN_DATABASE_URL`` or SQLite under ``$GARDEN_HOME``. ``timeout_s`` bounds each
    step (``ray start``, the catalog's first answer, the HTTP proxy); ``progress`` is
    called with the name of each step as it begins.

    ``llm_apps`` (Serve app name -> :class:`serve_apps.llm.LLMAppConfig`, e.g. from
    ``garden up --serve-config``) are LLM apps deployed beside the others, one per base
    model, each with its own scaling (``deployment.autoscaling_config``); ``llm_model``
    is the short form of one app, ``llm`` at ``/openai``. ``redis_address``
    (``host:port``) turns on Ray's GCS fault tolerance: the GCS keeps its tables in that
    Redis (``RAY_REDIS_ADDRESS``, ``ray start --redis-password``): actors, Serve apps and
    jobs live on while it is down, and a GCS started again comes back with the cluster's
    state (:func:`head_command`).

    Raises:
        cluster.startup.PortInUseError: a port is taken before anything started (the
            message names the holder and the flag that picks another port).
        cluster.startup.ClusterStartError: a step failed or ran past ``timeout_s``; what
            started was stopped, Ray's logs were moved to ``$GARDEN_HOME/logs/<session>/``
            (``logs_dir``) and the message quotes the GCS and raylet logs.
        RuntimeError: a cluster is already recorded for this ``GARDEN_HOME``.
    """
    # Ray 2.60 token auth: the cluster and this driver must agree, and Ray reads
    # RAY_AUTH_MODE once per process (an explicit address never auto-enables it), so it is
    # set before Ray is first imported here. `garden up` runs in a fresh process.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    if load_state() is not None:
        raise RuntimeError(f"a cluster is already recorded in {state_path()}: garden down first")
    ports = _ports(host, ray_port, dashboard_port, agent_port, http_port)
    check_ports(ports)  # before the imports below, which take seconds
    import ray

    from catalog.actor import Catalog, get_catalog
    from catalog.config import database_url
    from cluster.deploy import deploy_apps
    from serve_apps.gateway import GatewayConfig

    env = dict(os.environ, GARDEN_HOME=str(garden_home()),
               GARDEN_DATABASE_URL=database_url(),
               # as in an activated venv: `python` in a job's entrypoint (ray job submit
               # -- python -m train_jobs.run ...) is the interpreter that has the project
               PATH=os.pathsep.join([str(Path(sys.executable).parent),
                                     os.environ.get("PATH", "")]))
    if admin_key:
        env["GARDEN_ADMIN_KEY"] = admin_key
    env.setdefault(WORKER_NICENESS_ENV, "0")
    env.setdefault(PROXY_READY_ENV, f"{timeout_s:g}")
    if redis_address:
        env[REDIS_ADDRESS_ENV] = redis_address
    step = progress or (lambda _: None)
    if env["RAY_AUTH_MODE"].lower() == "token":
        _ensure_auth_token(env, timeout_s)
    # short: Ray's socket paths must fit 107 bytes
    temp_dir = tempfile.mkdtemp(prefix=f"garden-ray-{ray_port}-", dir="/tmp")
    env[CLUSTER_ENV] = temp_dir
    cmd = head_command(ray_port=ray_port, temp_dir=temp_dir, host=host,
                       dashboard_port=dashboard_port, agent_port=agent_port,
                       num_cpus=num_cpus, redis_password=redis_password)
    step(f"starting the Ray head on port {ray_port}")
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise _give_up(temp_dir, f"ray start did not finish within {timeout_s:.0f} s",
                       ports, _text(exc.stdout) + _text(exc.stderr)) from exc
    if done.returncode != 0:
        raise _give_up(temp_dir, f"ray start failed (exit {done.returncode})", ports,
                       done.stdout + done.stderr)
    os.environ.update({k: env[k] for k in ("GARDEN_HOME", "GARDEN_DATABASE_URL")})
    what = "connecting to the head"
    try:
        head = head_session(temp_dir)
        ray.init(address=head.address, namespace="garden", log_to_driver=False)
        connected = ray.get_runtime_context().get_session_name()
        if connected != head.name:
            raise ClusterStartError(
                f"the Ray at {head.address} runs session {connected}, not {head.name} "
                f"that ray start began in {temp_dir}: another Ray holds port {ray_port}")
        what = "starting the catalog"
        step(what)
        catalog = get_catalog(env["GARDEN_DATABASE_URL"])
        # its constructor's error at once (ActorDiedError), not after the retries that
        # the catalog client gives an actor that restarts
        ray.get(catalog.__ray_ready__.remote(), timeout=timeout_s)
        Catalog(catalog, timeout_s=timeout_s).ping()
        what = f"starting Serve's HTTP proxy on port {http_port}"
        step(what)
        _start_serve(host, http_port, timeout_s)
        what = "deploying the apps"
        step(what)
        # Replicas inherit the head's environment (the admin key included), so the key
        # is not repeated in a runtime_env, which the dashboard would display.
        gateway = GatewayConfig(dashboard_url=f"http://{host}:{dashboard_port}")
        deployed = deploy_apps(http_host=host, http_port=http_port, gateway=gateway,
                               llm_model=llm_model, llm_apps=llm_apps, media=media,
                               apps=apps, timeout_s=timeout_s)
    except BaseException as exc:
        ray.shutdown()
        detail = str(exc) if isinstance(exc, ClusterStartError) else summary(exc)
        error = _give_up(temp_dir, f"{what} failed: {detail}", ports)
        if isinstance(exc, Exception):
            raise error from exc
        raise  # KeyboardInterrupt: the logs are kept all the same
    ray.shutdown()
    cluster = LocalCluster(
        address=head.address, dashboard_url=f"http://{host}:{dashboard_port}",
        api_url=deployed.api_url, openai_base_url=deployed.openai_base_url,
        temp_dir=temp_dir, apps=deployed.apps, console_url=deployed.console_url,
    )
    state_path().write_text(json.dumps(asdict(cluster), indent=2))
    return cluster


def head_command(*, ray_port: int, temp_dir: str, host: str, dashboard_port: int,
                 agent_port: int, num_cpus: int | None = None,
                 redis_password: str | None = None) -> list[str]:
    """The ``ray start --head`` command of :func:`up`. With GCS fault tolerance, the
    Redis address travels in the environment (``RAY_REDIS_ADDRESS``, which Ray's
    ``Node`` reads) and its password as ``--redis-password``, as KubeRay starts a head
    with ``gcsFaultToleranceOptions``."""
    cmd = [_ray_cli(), "start", "--head", f"--port={ray_port}", f"--temp-dir={temp_dir}",
           "--include-dashboard=true", f"--dashboard-host={host}",
           f"--dashboard-port={dashboard_port}",
           f"--dashboard-agent-listen-port={agent_port}", "--disable-usage-stats",
           "--log-color=false"]  # its output may be quoted in an error
    if num_cpus is not None:
        cmd.append(f"--num-cpus={num_cpus}")
    if redis_password:
        cmd.append(f"--redis-password={redis_password}")
    return cmd


def _ports(host: str, ray_port: int, dashboard_port: int, agent_port: int,
           http_port: int) -> list[Port]:
    """The fixed ports the head listens on (GCS and agent on every interface, as Ray binds
    them; dashboard and HTTP proxy on ``host``); port 0 (the OS picks) is left out."""
    ports = [Port(ray_port, "Ray GCS", "--ray-port", "0.0.0.0"),
             Port(dashboard_port, "Ray dashboard", "--dashboard-port", host),
             Port(agent_port, "dashboard agent, job API", "--agent-port", "0.0.0.0"),
             Port(http_port, "Serve HTTP", "--http-port", host)]
    return [port for port in ports if port.number]


def _text(output: str | bytes | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def _give_up(temp_dir: str, what: str, ports: list[Port],
             ray_output: str = "") -> ClusterStartError:
    """Stop the half-started cluster in ``temp_dir``, keep its logs under
    ``$GARDEN_HOME/logs/``, delete the folder and return the error that says so."""
    quoted = quote_logs(temp_dir)
    _stop(cluster_processes(temp_dir), timeout_s=30)
    logs_dir = keep_logs(temp_dir, garden_home() / LOGS_DIR)
    shutil.rmtree(temp_dir, ignore_errors=True)
    return failure(what, ports=ports, logs_dir=logs_dir, quoted=quoted,
                   ray_output=ray_output)


def _start_serve(host: str, port: int, timeout_s: float) -> None:
    """Start Serve (controller and HTTP proxy on ``host:port``) on the connected cluster.

    ``serve.start`` waits a fixed 60 s for the proxy (``HTTP_PROXY_TIMEOUT`` in
    ray/serve/_private/constants.py, no setting) and raises ``TimeoutError``, or
    ``ActorDiedError`` when the controller replaced a proxy that was slow to start; the
    controller keeps starting proxies all the same, so past that this waits for the
    proxy to answer HTTP, up to ``timeout_s`` from the start.

    Raises:
        TimeoutError: no proxy answered within ``timeout_s``.
    """
    import httpx
    import ray
    from ray import serve

    from cluster.deploy import proxy_url

    deadline = time.monotonic() + timeout_s
    try:
        serve.start(http_options={"host": host, "port": port})
        return
    except (TimeoutError, ray.exceptions.ActorDiedError):
        pass
    # any answer will do: /-/routes is refused until the proxy has its routes
    url = f"{proxy_url(host, port)}/-/routes"
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            httpx.get(url, timeout=5)
            return
        time.sleep(1)
    raise TimeoutError(f"Serve's HTTP proxy did not answer on port {port} within "
                       f"{timeout_s:.0f} s")


def _ensure_auth_token(env: dict[str, str], timeout_s: float) -> None:
    """Create Ray's cluster token when none exists (Ray's own ``get-auth-token
    --generate``; an existing token is kept). The command prints the token, so its
    output is captured and dropped, never logged.

    Raises:
        RuntimeError: the command failed (its stderr is included; it holds no token).
        ClusterStartError: it ran past ``timeout_s`` (its output, the token, is dropped).
    """
    try:
        done = subprocess.run([_ray_cli(), "get-auth-token", "--generate"], env=env,
                              capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ClusterStartError(f"ray get-auth-token --generate did not finish within "
                                f"{timeout_s:.0f} s") from None
    if done.returncode != 0:
        raise RuntimeError(f"ray get-auth-token --generate failed: {done.stderr.strip()}")


def cluster_processes(temp_dir: str) -> list:
    """Live processes of the cluster whose Ray temp folder is ``temp_dir``, as psutil
    processes: those started with ``GARDEN_RAY_TEMP_DIR=temp_dir`` (every process of the
    cluster inherits it from ``ray start``, the agents and the Ray client server too,
    whose command lines do not name the folder) or naming the folder on their command
    line (its GCS, raylet and dashboard, in clusters started before the variable)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "environ"]):
        environ = proc.info.get("environ") or {}
        cmdline = proc.info.get("cmdline") or []
        if proc.pid != os.getpid() and (
                environ.get(CLUSTER_ENV) == temp_dir
                or any(part.endswith(temp_dir) or f"{temp_dir}/" in part
                       for part in cmdline)):
            found.append(proc)
    return found


def _stop(procs: list, *, timeout_s: float) -> None:
    """Stop ``procs`` in ``ray stop``'s order (ray/scripts/scripts.py): the raylet first,
    the GCS last, the others between, each group sent SIGTERM, given a third of
    ``timeout_s`` seconds, then SIGKILL. (A raylet stopped after its GCS keeps trying to
    reconnect until it is killed.)"""
    import psutil

    def group(proc) -> int:
        try:
            name = proc.name()
        except psutil.Error:
            return 1
        return 0 if name == "raylet" else 2 if name == "gcs_server" else 1

    for rank in range(3):
        members = [proc for proc in procs if group(proc) == rank]
        for proc in members:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
        _, alive = psutil.wait_procs(members, timeout=timeout_s / 3)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=timeout_s / 3)


def down(*, timeout_s: float = 16.0) -> int:
    """Stop the recorded local cluster: terminate its processes, wait up to ``timeout_s``
    seconds (default: ``ray stop``'s grace period), kill what is left, forget the state.
    Returns how many processes were stopped (0 when no cluster is recorded)."""
    cluster = load_state()
    if cluster is None:
        return 0
    procs = cluster_processes(cluster.temp_dir)
    _stop(procs, timeout_s=timeout_s)
    shutil.rmtree(cluster.temp_dir, ignore_errors=True)
    state_path().unlink(missing_ok=True)
    return len(procs)


def status(*, timeout_s: float = 10.0) -> dict:
    """The recorded cluster (URLs) and whether its processes and API answer:
    ``{"cluster": {...} | None, "processes": int, "health": {...} | None}``."""
    import httpx

    cluster = load_state()
    if cluster is None:
        return {"cluster": None, "processes": 0, "health": None}
    health = None
    try:
        health = httpx.get(f"{cluster.api_url}/health", timeout=timeout_s).json()
    except (httpx.HTTPError, ValueError) as exc:
        health = {"status": "unreachable", "detail": str(exc)}
    return {"cluster": asdict(cluster), "processes": len(cluster_processes(cluster.temp_dir)),
            "health": health}
