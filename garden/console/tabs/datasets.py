"""Datasets: upload a file (every format the API takes: JSONL, JSON, CSV, Parquet), then
its preview, schema and statistics (``/v1/datasets``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gradio as gr

from catalog.schemas import Dataset
from garden.console.common import ConsoleConfig, api, choices, shows_errors, when

#: The upload formats ``POST /v1/datasets`` takes (garden.client.datasets.CONTENT_TYPES).
FILE_TYPES = [".jsonl", ".json", ".csv", ".parquet", ".pq"]


def label(ds: Dataset) -> str:
    return f"{ds.name} v{ds.version} ({ds.num_rows} rows)"


def stats_text(ds: Dataset) -> str:
    """Markdown of a dataset's format, size and length statistics."""
    lines = [f"**{ds.name}** v{ds.version} · `{ds.id}` · {ds.format} rows from a "
             f"{ds.file_format or 'jsonl'} file · {ds.num_rows} rows · "
             f"{(ds.size_bytes or 0) / 1024:.1f} KiB · uploaded {when(ds.created_at)}"]
    st = ds.statistics
    if st is not None:
        unit = st.length_unit + (f" of {st.tokenizer}" if st.tokenizer else "")
        lines.append(
            f"- prompt length: mean {st.avg_input_length:.1f} · answer length: mean "
            f"{st.avg_output_length:.1f} · row length: {st.min_length} to {st.max_length} "
            f"({unit})")
        if st.total_tokens is not None:
            lines.append(f"- tokens in all: {st.total_tokens}")
    return "\n".join(lines)


def schema_rows(ds: Dataset) -> list[list[str]]:
    """``[column, required, example]`` per column of the dataset's schema."""
    if ds.dataset_schema is None:
        return []
    sch = ds.dataset_schema
    return [[col, "yes" if col in sch.required_columns else "",
             _cell(sch.sample.get(col))] for col in sch.columns]


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 300 else text[:297] + "..."


def preview_frame(rows: list[Any]) -> dict[str, Any]:
    """Preview rows as a table value: every key of the rows a column, nested values as
    JSON text."""
    headers: list[str] = []
    for row in rows:
        for k in row if isinstance(row, dict) else ["row"]:
            if k not in headers:
                headers.append(k)
    data = [[_cell(row.get(h) if isinstance(row, dict) else row) for h in headers]
            for row in rows]
    return {"headers": headers or ["row"], "data": data or [[""]]}


def render(config: ConsoleConfig, key: gr.State, signed_in: Any, tab: gr.Tab) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            file = gr.File(label="Dataset file", file_types=FILE_TYPES,
                           elem_id="dataset-file")
            name = gr.Textbox(label="Name (default: the file's name)", elem_id="dataset-name")
            description = gr.Textbox(label="Description")
            upload = gr.Button("Upload", variant="primary", elem_id="dataset-upload")
        with gr.Column(scale=2):
            picked = gr.Dropdown(label="Dataset", choices=[], elem_id="dataset-pick")
            stats = gr.Markdown(elem_id="dataset-stats")
            schema = gr.Dataframe(headers=["column", "required", "example"],
                                  label="Schema", interactive=False, elem_id="dataset-schema")
            preview = gr.Dataframe(label="Preview (first rows)", interactive=False,
                                   wrap=True, elem_id="dataset-preview")

    @shows_errors
    def listing(key_value: str | None, selected: str | None = None) -> Any:
        with api(config, key_value) as client:
            items = client.datasets.list(page_size=100).items
        ids = [d.id for d in items]
        return gr.update(choices=choices(items, label),
                         value=selected if selected in ids else (ids[0] if ids else None))

    @shows_errors
    def show(key_value: str | None, dataset_id: str | None) -> tuple[Any, ...]:
        if not dataset_id:
            return "", [], {"headers": ["row"], "data": [[""]]}
        with api(config, key_value) as client:
            ds = client.datasets.get(dataset_id)
            rows = client.datasets.preview(dataset_id, limit=10)
        return stats_text(ds), schema_rows(ds), preview_frame(rows)

    @shows_errors
    def send(key_value: str | None, path: str | None, ds_name: str, desc: str) -> Any:
        if not path:
            raise gr.Error("Choose a file to upload.")
        with api(config, key_value) as client:
            ds = client.datasets.upload(Path(path), ds_name.strip() or None,
                                        description=desc.strip() or None)
        gr.Info(f"Uploaded {ds.name} v{ds.version}: {ds.num_rows} rows")
        return listing(key_value, ds.id)

    signed_in.then(listing, key, picked)
    tab.select(listing, [key, picked], picked)
    picked.change(show, [key, picked], [stats, schema, preview])
    upload.click(send, [key, file, name, description], picked)
