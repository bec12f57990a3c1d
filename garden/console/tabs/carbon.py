"""Carbon and usage: energy, emissions, requests and tokens by model and by day, the
totals of seed 002's carbon summary, and CSV exports (``/v1/carbon``, ``/v1/usage``)."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from catalog.schemas import CarbonSummary, UsageSummary
from garden.console.common import ConsoleConfig, api, grams, shows_errors
from garden.errors import GardenError

#: Periods the charts cover, in days.
PERIODS = {"last 7 days": 7, "last 30 days": 30, "last 365 days": 365}


def totals_text(carbon: CarbonSummary, usage: UsageSummary) -> str:
    """Markdown of the carbon summary's totals and the usage totals."""
    t = usage.total
    return "\n".join([
        f"**{grams(carbon.total_emissions_kg)} CO2eq** in all, "
        f"{carbon.total_energy_kwh:.6f} kWh",
        f"- training: {grams(carbon.training_emissions_kg)} over "
        f"{carbon.num_training_jobs} job(s)",
        f"- inference: {grams(carbon.inference_emissions_kg)} over "
        f"{carbon.num_inference_requests} request(s)",
        f"- usage: {t.requests} requests, {t.total_tokens} tokens "
        f"({t.prompt_tokens} prompt, {t.completion_tokens} completion), "
        + (f"${t.cost_usd:.4f}" if t.cost_usd is not None else "no cost recorded"),
    ])


def carbon_by_model(carbon: CarbonSummary) -> pd.DataFrame:
    """Emissions (g CO2eq) and energy (Wh) per model, from the summary's ``by_model``."""
    rows = [{"model": b.model_name or b.model_id or "(no model)",
             "emissions_g": b.emissions_kg * 1000, "energy_wh": b.energy_kwh * 1000}
            for b in carbon.by_model]
    return pd.DataFrame(rows, columns=["model", "emissions_g", "energy_wh"])


def carbon_by_day(carbon: CarbonSummary) -> pd.DataFrame:
    """Long format ``day, value, measure`` of emissions (g) and energy (Wh) per day."""
    rows = [row for r in carbon.rows for row in (
        {"day": r.key, "value": r.emissions_kg * 1000, "measure": "emissions (g CO2eq)"},
        {"day": r.key, "value": r.energy_kwh * 1000, "measure": "energy (Wh)"})]
    return pd.DataFrame(rows, columns=["day", "value", "measure"])


def usage_frame(usage: UsageSummary, key: str,
                names: dict[str | None, str] | None = None) -> pd.DataFrame:
    """Requests and tokens per group (``key``: the column name of the group key;
    ``names`` maps group keys to what the chart shows)."""
    names = names or {}
    rows = [{key: names.get(r.key, r.key or "(none)"), "requests": r.requests,
             "tokens": r.total_tokens} for r in usage.rows]
    return pd.DataFrame(rows, columns=[key, "requests", "tokens"])


def render(config: ConsoleConfig, key: gr.State, signed_in: Any, tab: gr.Tab) -> None:
    with gr.Row():
        period = gr.Dropdown(list(PERIODS), value="last 30 days", label="Period", scale=2)
        refresh = gr.Button("Refresh", size="sm", scale=0, elem_id="carbon-refresh")
    totals = gr.Markdown(elem_id="carbon-totals")
    with gr.Row():
        by_model = gr.BarPlot(x="model", y="emissions_g", title="Emissions by model (g CO2eq)",
                              elem_id="carbon-by-model", height=260, y_lim=[0, None])
        by_day = gr.BarPlot(x="day", y="value", color="measure",
                            title="Energy and emissions by day", elem_id="carbon-by-day",
                            height=260, y_lim=[0, None])
    with gr.Row():
        req_model = gr.BarPlot(x="model", y="requests", title="Requests by model or adapter",
                               elem_id="usage-by-model", height=240, y_lim=[0, None])
        tok_day = gr.BarPlot(x="day", y="tokens", title="Tokens by day",
                             elem_id="usage-by-day", height=240, y_lim=[0, None])
    with gr.Row():
        usage_csv = gr.Button("Export usage CSV", size="sm", elem_id="usage-csv")
        carbon_csv = gr.Button("Export carbon CSV", size="sm", elem_id="carbon-csv")
        download = gr.File(label="CSV", interactive=False, elem_id="csv-file")

    def since(choice: str) -> datetime:
        return datetime.now(UTC) - timedelta(days=PERIODS.get(choice, 30))

    @shows_errors
    def load(key_value: str | None, choice: str) -> tuple[Any, ...]:
        start = since(choice)
        with api(config, key_value) as client:
            carbon_model = client.carbon.summary("model", since=start)
            carbon_day = client.carbon.summary("day", since=start)
            usage_model = client.usage.summary("model", since=start)
            by_adapter = client.usage.summary("adapter", since=start)
            usage_day = client.usage.summary("day", since=start)
            # adapter requests under the adapter's name, the rest under their base model
            names: dict[str | None, str] = {None: "base models"}
            for row in by_adapter.rows:
                if row.key and row.key.startswith("mdl_"):
                    try:
                        names[row.key] = client.models.get(row.key).name
                    except GardenError:  # deleted, or no longer visible: keep the id
                        continue
        return (totals_text(carbon_model, usage_model), carbon_by_model(carbon_model),
                carbon_by_day(carbon_day), usage_frame(by_adapter, "model", names),
                usage_frame(usage_day, "day"))

    def export(which: str):
        @shows_errors
        def run(key_value: str | None, choice: str) -> str:
            folder = Path(tempfile.mkdtemp(prefix="garden-console-"))
            path = folder / f"{which}.csv"
            with api(config, key_value) as client:
                if which == "usage":
                    client.usage.export_csv(path, since=since(choice))
                else:
                    path.write_text(client.carbon.export_csv(since=since(choice)))
            return str(path)
        return run

    outputs = [totals, by_model, by_day, req_model, tok_day]
    signed_in.then(load, [key, period], outputs)
    tab.select(load, [key, period], outputs)
    refresh.click(load, [key, period], outputs)
    period.change(load, [key, period], outputs)
    usage_csv.click(export("usage"), [key, period], download)
    carbon_csv.click(export("carbon"), [key, period], download)
