"""The main job end to end, as a user runs it: ``garden demo`` in a fresh GARDEN_HOME,
on a small slice (few steps, two questions), then the catalog is checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from catalog.store import CatalogStore
from tests.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.vllm]

GARDEN = str(Path(sys.executable).with_name("garden"))


@pytest.fixture
def garden_home(tmp_path):
    home = tmp_path / "garden"
    env = dict(os.environ, GARDEN_HOME=str(home), COLUMNS="200", RAY_AUTH_MODE="token")
    env.pop("GARDEN_DATABASE_URL", None)
    yield home, env
    subprocess.run([GARDEN, "down"], env=env, timeout=120, check=False)


def test_demo_trains_serves_and_answers(garden_home):
    home, env = garden_home
    cmd = [GARDEN, "demo", "--steps", "8", "--questions", "2",
           "--http-port", str(free_port()), "--ray-port", str(free_port()),
           "--dashboard-port", str(free_port()), "--agent-port", str(free_port())]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200,
                          check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    for heading in ("1. cluster", "3. LoRA training as a Ray job", "5. held-out questions",
                    "eval loss before", "garden down"):
        assert heading in out

    store = CatalogStore.open(f"sqlite:///{home / 'catalog.db'}", migrate=False)
    job = store.training_jobs.list(status="completed").items[0]
    assert job.scaling.num_workers == 2 and job.ray_job_id
    assert job.eval_loss_after < job.eval_loss_before
    assert job.emissions_kg > 0 and job.energy_kwh > 0
    adapter = store.models.get(job.output_model_id)
    assert adapter.kind == "adapter" and adapter.base_model_id == job.base_model_id
    assert adapter.dataset_id == job.dataset_id and adapter.training_job_id == job.id
    assert store.datasets.get(job.eval_dataset_id).num_rows == 64
    usage = store.usage.list(page_size=100).items
    by_adapter = {u.adapter is not None for u in usage}
    assert len(usage) == 4 and by_adapter == {True, False}
    assert all(u.completion_tokens > 0 and u.prompt_tokens > 0 for u in usage)
    assert sum(u.emissions_kg for u in usage) > 0
    assert store.carbon.list(training_job_id=job.id).total == 1
    store.close()

    report = json.loads((home / "demo-report.json").read_text())
    assert report["job_id"] == job.id and len(report["answers"]) == 2
    assert all(a["base"] and a["adapter"] for a in report["answers"])
    assert any(a["base"] != a["adapter"] for a in report["answers"])
