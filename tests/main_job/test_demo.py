"""The main job end to end, as a user runs it (``garden demo``, run once by the
package's ``demo`` fixture), then the catalog is checked."""

from __future__ import annotations

import json

import pytest

from catalog.store import CatalogStore

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.vllm]


def test_demo_trains_serves_and_answers(demo):
    home, out = demo.home, demo.output
    assert demo.returncode == 0, out[-4000:]
    for heading in ("1. cluster", "3. LoRA training as a Ray job", "5. held-out questions",
                    "eval loss before", "garden down"):
        assert heading in out
    # the last line it prints is the web console's address
    assert demo.stdout.rstrip().splitlines()[-1].startswith("web console: http://")
    assert demo.console_url is not None and demo.console_url.endswith("/ui/")

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
