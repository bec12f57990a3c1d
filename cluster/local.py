"""A local Model Garden: one Ray head with the dashboard, the catalog actor and the Serve
apps (``garden up`` / ``garden down`` / ``garden status``).

Ports default to Ray 6380 (Redis owns 6379 on these machines), dashboard 8265 and
Serve HTTP 8000. Ray 2.60 enables token auth on new clusters; ``up`` uses
``RAY_AUTH_MODE=token`` unless the environment says otherwise, for the head, its
replicas (the gateway's job API calls) and the driver alike. The token lives in
``~/.ray/auth_token`` (or ``$RAY_AUTH_TOKEN_PATH``); ``ray start`` refuses to run without
one, so ``up`` first has ``ray get-auth-token --generate`` create it when missing. The
cluster's address, URLs and Ray temp folder are saved in ``$GARDEN_HOME/cluster.json``.
Each cluster gets its own short Ray temp folder (``/tmp/garden-ray-<port>``) that every
one of its processes names on its command line, so ``down`` (and a failed ``up``) stop
only that cluster's processes, never ``ray stop``, which would stop every Ray on the host.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from catalog.config import garden_home

STATE_FILE = "cluster.json"


@dataclass(frozen=True)
class LocalCluster:
    """Where a local Model Garden answers."""

    address: str
    dashboard_url: str
    api_url: str
    openai_base_url: str
    temp_dir: str
    apps: tuple[str, ...] = ()
    console_url: str | None = None  # the web console (garden.console), when deployed


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
    llm_model: str | None = None,
    admin_key: str | None = None, media: bool = True, timeout_s: float = 180.0,
) -> LocalCluster:
    """Start the head, the catalog actor and the apps; record and return the URLs.

    ``agent_port`` is the dashboard agent's HTTP port (Ray's default 52365), which the
    job API submits through; when another Ray on the machine holds it, the job API
    answers "No available agent", so pass a free one there (0 lets the agent pick).
    ``admin_key`` (default ``$GARDEN_ADMIN_KEY``) becomes the bootstrap admin key of the
    gateway. ``media`` deploys the media router (image and video providers) too. The
    catalog database is ``$GARDEN_DATABASE_URL`` or SQLite under
    ``$GARDEN_HOME``.

    Raises:
        RuntimeError: ``ray start`` failed (e.g. a port is taken; its output is included)
            or a cluster is already recorded for this ``GARDEN_HOME``.
        subprocess.TimeoutExpired: ``ray start`` took longer than ``timeout_s``.
    """
    # Ray 2.60 token auth: the cluster and this driver must agree, and Ray reads
    # RAY_AUTH_MODE once per process (an explicit address never auto-enables it), so it is
    # set before Ray is first imported here. `garden up` runs in a fresh process.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    import ray

    from catalog.actor import Catalog, get_catalog
    from catalog.config import database_url
    from cluster.deploy import deploy_apps
    from serve_apps.gateway import GatewayConfig

    if load_state() is not None:
        raise RuntimeError(f"a cluster is already recorded in {state_path()}: garden down first")
    env = dict(os.environ, GARDEN_HOME=str(garden_home()),
               GARDEN_DATABASE_URL=database_url(),
               # as in an activated venv: `python` in a job's entrypoint (ray job submit
               # -- python -m train_jobs.run ...) is the interpreter that has the project
               PATH=os.pathsep.join([str(Path(sys.executable).parent),
                                     os.environ.get("PATH", "")]))
    if admin_key:
        env["GARDEN_ADMIN_KEY"] = admin_key
    if env["RAY_AUTH_MODE"].lower() == "token":
        _ensure_auth_token(env, timeout_s)
    temp_dir = f"/tmp/garden-ray-{ray_port}"  # short: Ray's socket paths must fit 107 bytes
    cmd = [_ray_cli(), "start", "--head", f"--port={ray_port}", f"--temp-dir={temp_dir}",
           "--include-dashboard=true", f"--dashboard-host={host}",
           f"--dashboard-port={dashboard_port}",
           f"--dashboard-agent-listen-port={agent_port}", "--disable-usage-stats"]
    if num_cpus is not None:
        cmd.append(f"--num-cpus={num_cpus}")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s,
                          check=False)
    if done.returncode != 0:
        _stop(cluster_processes(temp_dir), timeout_s=30)
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise RuntimeError(f"ray start failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    os.environ.update({k: env[k] for k in ("GARDEN_HOME", "GARDEN_DATABASE_URL")})
    address = f"{host}:{ray_port}"
    try:
        ray.init(address=address, namespace="garden", log_to_driver=False)
        Catalog(get_catalog(env["GARDEN_DATABASE_URL"]), timeout_s=timeout_s).ping()
        # Replicas inherit the head's environment (the admin key included), so the key
        # is not repeated in a runtime_env, which the dashboard would display.
        gateway = GatewayConfig(dashboard_url=f"http://{host}:{dashboard_port}")
        deployed = deploy_apps(http_host=host, http_port=http_port, gateway=gateway,
                               llm_model=llm_model, media=media)
    except BaseException:
        ray.shutdown()
        _stop(cluster_processes(temp_dir), timeout_s=30)
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    ray.shutdown()
    cluster = LocalCluster(
        address=address, dashboard_url=f"http://{host}:{dashboard_port}",
        api_url=deployed.api_url, openai_base_url=deployed.openai_base_url,
        temp_dir=temp_dir, apps=deployed.apps, console_url=deployed.console_url,
    )
    state_path().write_text(json.dumps(asdict(cluster), indent=2))
    return cluster


def _ensure_auth_token(env: dict[str, str], timeout_s: float) -> None:
    """Create Ray's cluster token when none exists (Ray's own ``get-auth-token
    --generate``; an existing token is kept). The command prints the token, so its
    output is captured and dropped, never logged.

    Raises:
        RuntimeError: the command failed (its stderr is included; it holds no token).
    """
    done = subprocess.run([_ray_cli(), "get-auth-token", "--generate"], env=env,
                          capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ray get-auth-token --generate failed: {done.stderr.strip()}")


def cluster_processes(temp_dir: str) -> list:
    """Live processes whose command line names ``temp_dir`` (that cluster's GCS, raylet,
    dashboard and agents; its workers exit when their raylet does), as psutil processes."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.pid != os.getpid() and any(temp_dir in part for part in cmdline):
            found.append(proc)
    return found


def _stop(procs: list, *, timeout_s: float) -> None:
    """SIGTERM ``procs``, wait up to ``timeout_s`` s, SIGKILL the rest and reap them."""
    import psutil

    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=timeout_s)


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
