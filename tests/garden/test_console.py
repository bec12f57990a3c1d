"""The web console's pieces without a browser: the page builds and serves its config,
and the conversions of API answers that the tabs draw (the browser tests, which drive
the demo's cluster, are in ``tests/main_job/test_web_console.py``)."""

from __future__ import annotations

from datetime import UTC, datetime

import gradio as gr
import pytest
from fastapi.testclient import TestClient

from catalog import schemas as s
from catalog.schemas import ErrorBody, Hyperparameters, MetricPoint
from garden.console import ConsoleConfig, create_app
from garden.console.common import bounds, shows_errors
from garden.console.tabs.datasets import preview_frame
from garden.console.tabs.models import lineage_mermaid, model_text
from garden.console.tabs.overview import apps_table
from garden.console.tabs.training import loss_frame
from garden.errors import ValidationFailedError


def test_the_page_serves_sign_in_and_every_tab():
    client = TestClient(create_app(ConsoleConfig(api_url="http://127.0.0.1:9")))
    assert client.get("/").status_code == 200
    config = client.get("/config").json()
    ids = {c["props"].get("elem_id") for c in config["components"]}
    assert {"signin-key", "signin-button", "train-loss", "model-lineage",
            "play-base-answer", "play-adapter-answer", "carbon-by-model"} <= ids
    labels = {c["props"].get("label") for c in config["components"] if c["type"] == "tabitem"}
    assert labels == {"Overview", "Datasets", "Training", "Models", "Playground",
                      "Carbon & usage", "Media"}
    # the key is typed into a password box
    key_box = next(c for c in config["components"] if c["props"].get("elem_id") == "signin-key")
    assert key_box["props"]["type"] == "password"


def test_loss_frame_has_a_row_per_loss_and_series():
    points = [MetricPoint(step=0, eval_loss=3.5), MetricPoint(step=1, train_loss=3.2),
              MetricPoint(step=2, train_loss=2.9, eval_loss=3.0, learning_rate=1e-4)]
    frame = loss_frame(points)
    assert frame.to_dict("records") == [
        {"step": 0, "loss": 3.5, "series": "eval loss"},
        {"step": 1, "loss": 3.2, "series": "train loss"},
        {"step": 2, "loss": 2.9, "series": "train loss"},
        {"step": 2, "loss": 3.0, "series": "eval loss"}]
    assert list(loss_frame([]).columns) == ["step", "loss", "series"]


def test_bounds_come_from_the_schema():
    assert bounds(Hyperparameters, "learning_rate") == {"minimum": 0, "maximum": 1e-2}
    assert bounds(Hyperparameters, "max_steps") == {"minimum": 1}
    assert bounds(Hyperparameters, "per_device_train_batch_size") == {"minimum": 1,
                                                                      "maximum": 128}


def _model(id_: str, name: str, kind: str) -> s.Model:
    now = datetime.now(UTC)
    return s.Model.model_construct(
        id=id_, name=name, version=1, kind=kind, path=f"/m/{name}",
        base_model_id=None if kind == "base" else "mdl_base", published=False, evaluation=None,
        created_at=now, updated_at=now)


def test_lineage_mermaid_quotes_labels_and_keeps_known_edges():
    lineage = s.ModelLineage.model_construct(
        model=_model("mdl_a", "my-lora", "adapter"),
        nodes=[s.LineageNode(id="ds_1", kind="dataset", label='chat "v1" (3 rows)'),
               s.LineageNode(id="mdl_a", kind="model", label="my-lora v1 (adapter)"),
               s.LineageNode(id="requests:mdl_a", kind="requests", label="2 requests")],
        edges=[s.LineageEdge(source="ds_1", target="mdl_a", label="trained on"),
               s.LineageEdge(source="mdl_a", target="requests:mdl_a", label="served"),
               s.LineageEdge(source="job_gone", target="mdl_a", label="produced")])
    text = lineage_mermaid(lineage)
    assert text.startswith("```mermaid\nflowchart LR") and text.endswith("```")
    assert 'n0[("chat #quot;v1#quot; (3 rows)")]' in text
    assert "n0 -->|trained on| n1" in text and "n1 -->|served| n2" in text
    assert "produced" not in text  # an edge to a node not drawn is left out
    assert "style n1 stroke-width:3px" in text


def test_the_model_page_shows_its_evaluation_base_against_adapter():
    scores = [s.EvaluationScore(metric="rouge_l", base=0.121, adapter=0.264),
              s.EvaluationScore(metric="exact_match", base=0.0, adapter=0.125)]
    adapter = _model("mdl_a", "my-lora", "adapter").model_copy(update={
        "evaluation": s.EvaluationSummary(id="eval_1", dataset_id="ds_1", n=8,
                                          scores=scores)})
    lineage = s.ModelLineage.model_construct(
        model=adapter, training_job=None, dataset=None, base_model=None, adapters=[],
        serving=s.ServingTotals(requests=0, prompt_tokens=0, completion_tokens=0, cost_usd=0,
                                energy_kwh=0, emissions_kg=0, scope="caller"))
    text = model_text(lineage)
    assert "**evaluation** `eval_1` on 8 prompts" in text
    assert "| rouge_l | 0.121 | 0.264 |" in text and "| exact_match | 0.000 | 0.125 |" in text
    plain = model_text(lineage.model_copy(update={"model": _model("mdl_b", "b", "base")}))
    assert "evaluation" not in plain


def test_apps_table_counts_running_and_other_replicas():
    system = {"serve": {"llm": {"status": "DEPLOYING", "deployments": {
        "LLMServer": {"status": "UPDATING", "replicas": {"RUNNING": 1, "STARTING": 1}}}}}}
    assert apps_table(system) == [["llm", "LLMServer", "UPDATING", 1, "1 starting"]]


def test_preview_frame_joins_keys_and_shows_nested_values_as_json():
    frame = preview_frame([{"instruction": "hi", "output": "hello"},
                           {"messages": [{"role": "user", "content": "x"}]}])
    assert frame["headers"] == ["instruction", "output", "messages"]
    assert frame["data"][1][2] == '[{"role": "user", "content": "x"}]'


def test_api_errors_become_toasts_naming_status_code_and_field():
    @shows_errors
    def refused() -> None:
        raise ValidationFailedError(422, ErrorBody(code="invalid_argument",
                                                   message="too large", field="lora.r"))

    with pytest.raises(gr.Error, match=r"422 invalid_argument: too large \(field: lora.r\)"):
        refused()

    @shows_errors
    def invalid() -> None:
        Hyperparameters(learning_rate=5.0)

    with pytest.raises(gr.Error, match=r"invalid learning_rate: Input should be less"):
        invalid()
