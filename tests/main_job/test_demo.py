"""The main job end to end, as a user runs it (``garden demo``, run once by the
package's ``demo`` fixture), then the catalog is checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog.store import CatalogStore
from eval_jobs.run import read_examples
from eval_jobs.scoring import score
from tests.main_job.conftest import EVALUATE_N

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.vllm]


def test_demo_trains_serves_and_answers(demo):
    home, out = demo.home, demo.output
    assert demo.returncode == 0, out[-4000:]
    for heading in ("1. cluster", "3. LoRA training as a Ray job", "5. held-out questions",
                    "6. evaluation", "rouge_l", "eval loss before", "garden down"):
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
    [evaluation] = store.evaluations.list(model_id=adapter.id).items
    assert evaluation.status == "completed", evaluation.error_message
    assert (evaluation.job_id, evaluation.n) == (job.id, EVALUATE_N)
    assert job.evaluation == adapter.evaluation == evaluation.summary()
    check_scores_come_from_the_engine(store, evaluation)

    usage = store.usage.list(page_size=100).items
    online = [u for u in usage if not u.id.startswith(f"{evaluation.batch_id}:")]
    assert len(usage) - len(online) == 2 * EVALUATE_N  # the evaluation's answers, billed
    assert len(online) == 4 and {u.adapter is not None for u in online} == {True, False}
    assert all(u.completion_tokens > 0 and u.prompt_tokens > 0 for u in usage)
    assert sum(u.emissions_kg for u in usage) > 0
    assert store.carbon.list(training_job_id=job.id).total == 1
    store.close()

    report = json.loads((home / "demo-report.json").read_text())
    assert report["job_id"] == job.id and len(report["answers"]) == 2
    assert all(a["base"] and a["adapter"] for a in report["answers"])
    assert any(a["base"] != a["adapter"] for a in report["answers"])
    assert report["evaluation"]["id"] == job.evaluation.id


def check_scores_come_from_the_engine(store: CatalogStore, evaluation) -> None:
    """The stored scores are the metrics of the answers in the evaluation batch's output
    file (vLLM's), against the eval set's references; its kept examples are those
    answers. No threshold on the adapter's quality: 8 steps on 2 cores teach little."""
    batch = store.batches.get(evaluation.batch_id)
    assert batch.status == "completed" and batch.request_counts.completed == 2 * EVALUATE_N
    lines = [json.loads(line) for line in Path(
        store.datasets.get(batch.output_file_id).path).read_text().splitlines()]
    text = {line["custom_id"]: line["response"]["body"]["choices"][0]["message"]["content"]
            for line in lines}
    data = store.datasets.get(evaluation.dataset_id)
    references = [e.reference for e in read_examples(data.path, data.format, EVALUATE_N)]
    for who in ("base", "adapter"):
        expected = score([text[f"{who}-{i}"] for i in range(EVALUATE_N)], references)
        stored = {x.metric: getattr(x, who) for x in evaluation.scores}
        assert stored == pytest.approx(expected), (who, stored, expected)
    assert [(x.base, x.adapter) for x in evaluation.examples] == [
        (text[f"base-{i}"], text[f"adapter-{i}"]) for i in range(len(evaluation.examples))]
    assert [x.reference for x in evaluation.examples] == references[:len(evaluation.examples)]
