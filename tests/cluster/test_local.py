"""``garden up`` / ``status`` / ``down`` for real, in a fresh process, on free ports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from garden import Client
from tests.conftest import free_port

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def garden(*args: str, env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "garden.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


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


def test_up_status_down(tmp_path):
    key = "gk_admin_local_test"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "GARDEN_"))}
    # A user who never ran Ray: no ~/.ray/auth_token yet (`ray start` alone refuses).
    env.update(GARDEN_HOME=str(tmp_path / "home"), GARDEN_ADMIN_KEY=key,
               HOME=str(tmp_path / "user"), RAY_AUTH_MODE="token")
    ray_port, dash_port, http_port = free_port(), free_port(), free_port()
    try:
        up = garden("up", "--ray-port", str(ray_port), "--dashboard-port", str(dash_port),
                    "--http-port", str(http_port), "--agent-port", "0", "--num-cpus", "4",
                    "--no-media",
                    env=env, timeout=500)
        assert up.returncode == 0, up.stdout + up.stderr
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
        status = garden("status", env=env, timeout=60)
        assert status.returncode == 0 and "healthy" in status.stdout
        assert f"{api}/ui/" in status.stdout
    finally:
        down = garden("down", env=env, timeout=120)
    assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
    assert not os.path.exists(f"/tmp/garden-ray-{ray_port}")
    assert garden("status", env=env, timeout=60).returncode == 1
