"""``garden up`` / ``status`` / ``down`` for real, in a fresh process, on free ports:
with both cores busy, with a port taken, and failing after Ray started."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from cluster.local import CLUSTER_ENV, cluster_processes
from garden import Client
from tests.conftest import free_port, start_redis, wait_for

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def garden(*args: str, env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "garden.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def user_env(tmp_path: Path, **extra: str) -> dict:
    """The environment of a user who never ran Ray (no ~/.ray/auth_token yet, which
    ``ray start`` alone refuses), with its own GARDEN_HOME."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAY_ADDRESS", "GARDEN_"))}
    env.update(GARDEN_HOME=str(tmp_path / "home"), HOME=str(tmp_path / "user"),
               RAY_AUTH_MODE="token", **extra)
    return env


@contextmanager
def busy_cores(n: int = 2) -> Iterator[None]:
    """``n`` processes spinning on a core each (a machine right after a cold install)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def leftovers(ray_port: int) -> list:
    """Temp folders and live processes of any cluster ``up`` started on ``ray_port``."""
    prefix = f"/tmp/garden-ray-{ray_port}-"
    folders = [str(p) for p in Path("/tmp").glob(f"garden-ray-{ray_port}-*")]
    procs = [p.pid for p in psutil.process_iter(["environ"])
             if (p.info.get("environ") or {}).get(CLUSTER_ENV, "").startswith(prefix)]
    return folders + procs


def submit_and_cancel_through_the_job_api(client: Client, home) -> None:
    """The gateway replica reaches the token-protected job API: submit, stop, read logs."""
    from catalog import schemas as s
    from catalog.store import CatalogStore

    store = CatalogStore.open(f"sqlite:///{home}/catalog.db")
    try:
        base = store.register_model(s.ModelCreate(
            name="placeholder-base", kind="base", path=str(home / "no-weights"),
            published=True))
    finally:
        store.close()
    rows = b'{"instruction": "hi", "output": "hello"}\n'
    dataset = client.datasets.upload(rows, name="e2e")
    job = client.training.create(name="e2e", base_model_id=base.id, dataset_id=dataset.id,
                                 hyperparameters={"max_steps": 1})
    assert job.status == "queued" and job.ray_job_id == f"garden-train-{job.id}"
    assert job.cancel().status == "cancelled"
    assert isinstance(job.logs(), str)
    messages = [e["message"] for e in job.events()["items"]]
    assert messages[-1] == "status -> cancelled"


def serve_deploy_the_kuberay_serve_config(tmp_path: Path, env: dict, client: Client,
                                          dash_port: int, http_port: int,
                                          smollm2_folder: Path) -> None:
    """The RayService's ``serveConfigV2``, generated for this cluster's size (CPU engine,
    its ports), deployed with ``serve deploy``: every app then answers, the LLM app with
    a chat."""
    from catalog import schemas as s
    from catalog.store import CatalogStore

    store = CatalogStore.open(f"sqlite:///{tmp_path / 'home'}/catalog.db")
    try:
        store.register_model(s.ModelCreate(name="SmolLM2-135M-Instruct", kind="base",
                                           path=str(smollm2_folder), published=True))
    finally:
        store.close()
    settings = tmp_path / "kuberay.yaml"
    settings.write_text(yaml.safe_dump({
        "gpu_workers": {"cpus": 2, "memory": "8Gi", "gpus": 0},
        "serve": {"http_host": "127.0.0.1", "http_port": http_port,
                  "proxy_location": "HeadOnly",
                  "gateway": {"dashboard_url": f"http://127.0.0.1:{dash_port}"},
                  "llm": {"llm": {"model": "SmolLM2-135M-Instruct",
                                  "engine_args": {"max_model_len": 512, "max_num_seqs": 4},
                                  "deployment": {"ray_actor_options": {"num_cpus": 1}}}}}}))
    out = tmp_path / "kuberay"
    done = garden("deploy", "kuberay", "--out", str(out), "--config", str(settings), env=env,
                  timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    service = yaml.safe_load((out / "rayservice.yaml").read_text())
    config = tmp_path / "serve-config.yaml"
    config.write_text(service["spec"]["serveConfigV2"])
    serve = str(Path(sys.executable).with_name("serve"))
    done = subprocess.run([serve, "deploy", str(config), "--address",
                           f"http://127.0.0.1:{dash_port}"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    api = f"http://127.0.0.1:{http_port}"

    def llm_running() -> bool:
        health = client.health()["components"]
        return health.get("app:llm", {}).get("status") == "healthy"

    wait_for(llm_running, 600, "the LLM app of the serve deploy to run", interval_s=5)
    health = client.health()
    assert health["status"] == "healthy", health
    assert {"app:media", "app:console", "app:llm"} <= set(health["components"])
    headers = {"Authorization": f"Bearer {client.api_key}"}
    models = httpx.get(f"{api}/openai/v1/models", headers=headers, timeout=30).json()
    assert [m["id"] for m in models["data"]] == ["SmolLM2-135M-Instruct"]
    chat = httpx.post(f"{api}/openai/v1/chat/completions", headers=headers, timeout=300, json={
        "model": "SmolLM2-135M-Instruct", "max_tokens": 4, "temperature": 0,
        "messages": [{"role": "user", "content": "Hello"}]})
    assert chat.status_code == 200, chat.text
    assert chat.json()["usage"]["completion_tokens"] > 0
    assert httpx.get(f"{api}/ui/", timeout=30).status_code == 200


def ray_job_submit_the_kuberay_rayjob(tmp_path: Path, env: dict, client: Client,
                                      dash_port: int) -> None:
    """The training RayJob's entrypoint and runtime env as KubeRay's submitter runs them
    (``ray job submit``), its ConfigMap mounted as a folder: the job file is read from the
    uploaded working_dir, the job registered for the key in the head's environment (a
    Pod's Secret on Kubernetes) and started; it is then stopped."""
    docs = list(yaml.safe_load_all((tmp_path / "kuberay" / "rayjob-train.yaml").read_text()))
    config_map, job = docs
    mounted = tmp_path / "job-configmap"
    mounted.mkdir()
    for name, text in config_map["data"].items():
        (mounted / name).write_text(text)
    runtime_env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    runtime_env["working_dir"] = str(mounted)  # where KubeRay mounts it: JOB_DIR
    rows = b"".join(b'{"instruction": "q%d", "output": "a%d"}\n' % (i, i) for i in range(20))
    client.datasets.upload(rows, name="chatterbot-train")  # the example's dataset
    submission = "kuberay-train-1"
    done = subprocess.run(
        [str(Path(sys.executable).with_name("ray")), "job", "submit", "--address",
         f"http://127.0.0.1:{dash_port}", "--no-wait", "--submission-id", submission,
         "--runtime-env-json", json.dumps(runtime_env), "--",
         *job["spec"]["entrypoint"].split()],
        env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout + done.stderr

    def registered():
        jobs = [j for j in client.training.list().items if j.ray_job_id == submission]
        return jobs and jobs[0].status == "running" and jobs[0]

    training = wait_for(registered, 300, "the RayJob's training job to run", interval_s=2)
    assert training.name == "chatterbot-sft"  # examples/sft.yaml, read from the working_dir
    assert training.cancel().status == "cancelled"


def test_up_status_down(tmp_path, smollm2_folder):
    key = "gk_admin_local_test"
    # GARDEN_API_KEY: the head's environment, which a RayJob's driver acts with
    env = user_env(tmp_path, GARDEN_ADMIN_KEY=key, GARDEN_API_KEY=key)
    ray_port, dash_port, http_port = free_port(), free_port(), free_port()
    redis = start_redis(tmp_path / "redis")
    try:
        with busy_cores(2):  # `up` holds with both cores taken
            up = garden("up", "--ray-port", str(ray_port), "--dashboard-port",
                        str(dash_port), "--http-port", str(http_port), "--agent-port", "0",
                        "--num-cpus", "4", "--no-media", "--redis", redis.address,
                        env=env, timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr
        assert redis.keys() > 0  # GCS fault tolerance: the GCS keeps its tables there
        temp_dir = json.loads((tmp_path / "home" / "cluster.json").read_text())["temp_dir"]
        token = (tmp_path / "user" / ".ray" / "auth_token").read_text().strip()
        assert token and token not in up.stdout + up.stderr
        api = f"http://127.0.0.1:{http_port}"
        assert f"API        {api}" in up.stdout
        assert f"OpenAI     {api}/openai/v1" in up.stdout
        assert f"Dashboard  http://127.0.0.1:{dash_port}" in up.stdout
        assert f"Console    {api}/ui/" in up.stdout
        assert httpx.get(f"{api}/ui/", timeout=30).status_code == 200
        client = Client(api, key)
        assert client.health()["components"]["database"]["status"] == "healthy"
        assert client.system()["cpus"]["total"] == 4
        submit_and_cancel_through_the_job_api(client, tmp_path / "home")
        # `python` in a job's entrypoint is the project's interpreter, as the README's
        # `ray job submit -- python -m train_jobs.run ...` needs (PATH here has no venv)
        job = subprocess.run(
            [str(Path(sys.executable).with_name("ray")), "job", "submit", "--address",
             f"http://127.0.0.1:{dash_port}", "--", "python", "-c",
             "import sys, train_jobs; print('interpreter', sys.executable)"],
            env=env, capture_output=True, text=True, timeout=180)
        assert job.returncode == 0, job.stdout + job.stderr
        assert f"interpreter {Path(sys.executable)}" in job.stdout, job.stdout
        again = garden("up", "--ray-port", str(ray_port), env=env, timeout=60)
        assert again.returncode == 1 and "garden down first" in again.stdout
        # another checkout (its own GARDEN_HOME) on the same Ray port: told who holds it
        other = garden("up", "--ray-port", str(ray_port), "--dashboard-port",
                       str(free_port()), "--http-port", str(free_port()), "--agent-port", "0",
                       env=user_env(tmp_path / "other"), timeout=120)
        assert other.returncode == 1, other.stdout + other.stderr
        assert (f"port {ray_port} (Ray GCS) is taken by pid " in other.stdout
                and f"(gcs_server), Ray cluster {temp_dir} (session session_" in other.stdout
                and f"started by garden up with GARDEN_HOME={tmp_path / 'home'} "
                    "(garden down there stops it): pick another with --ray-port"
                in other.stdout), other.stdout
        status = garden("status", env=env, timeout=60)
        assert status.returncode == 0 and "healthy" in status.stdout
        assert f"{api}/ui/" in status.stdout
        serve_deploy_the_kuberay_serve_config(tmp_path, env, client, dash_port, http_port,
                                              smollm2_folder)
        ray_job_submit_the_kuberay_rayjob(tmp_path, env, client, dash_port)
    finally:
        down = garden("down", env=env, timeout=120)
        redis.stop()
    assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
    # every process of the cluster is gone, the agents and the Ray client server too
    assert not os.path.exists(temp_dir) and not cluster_processes(temp_dir)
    assert garden("status", env=env, timeout=60).returncode == 1


def test_up_refuses_a_taken_port_at_once(tmp_path):
    """Any listener on the Ray port (a real Ray head: :func:`test_up_status_down`): ``up``
    names the port, the holder and the flag, before starting anything."""
    env = user_env(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as holder:
        port = holder.getsockname()[1]
        t0 = time.monotonic()
        up = garden("up", "--ray-port", str(port), "--dashboard-port", str(free_port()),
                    "--http-port", str(free_port()), "--agent-port", "0", env=env,
                    timeout=120)
        elapsed = time.monotonic() - t0
    assert up.returncode == 1, up.stdout + up.stderr
    assert (f"port {port} (Ray GCS) is taken by pid {os.getpid()} "
            f"({psutil.Process().name()}): pick another with --ray-port") in up.stdout
    assert elapsed < 30, f"{elapsed:.0f} s"  # the CLI's imports; no Ray was started
    assert not (tmp_path / "home" / "cluster.json").exists() and not leftovers(port)


def test_a_failed_up_keeps_the_logs(tmp_path):
    """The catalog cannot open its database (nothing listens on port 1): ``up`` stops what
    it started and keeps Ray's logs under $GARDEN_HOME/logs, quoting the GCS log."""
    env = user_env(tmp_path, GARDEN_DATABASE_URL="postgresql+psycopg://garden@127.0.0.1:1/none")
    ray_port = free_port()
    up = garden("up", "--ray-port", str(ray_port), "--dashboard-port", str(free_port()),
                "--http-port", str(free_port()), "--agent-port", "0", "--num-cpus", "2",
                "--no-media", env=env, timeout=400)
    assert up.returncode == 1, up.stdout + up.stderr
    kept = list((tmp_path / "home" / "logs").iterdir())
    assert len(kept) == 1 and kept[0].name.startswith("session_"), kept
    assert "error: starting the catalog failed: ActorDiedError: " in up.stdout, up.stdout
    assert 'port 1 failed: Connection refused' in up.stdout  # the cause, from its traceback
    assert f"Ray's logs are kept in {kept[0]}\n" in up.stdout
    assert (kept[0] / "raylet.out").is_file()
    gcs_log = (kept[0] / "gcs_server.out").read_text()
    assert "--- gcs_server.out (last " in up.stdout
    assert f"listening on port {ray_port}" in gcs_log
    assert "What to try: " in up.stdout
    assert not (tmp_path / "home" / "cluster.json").exists()
    assert not leftovers(ray_port)
