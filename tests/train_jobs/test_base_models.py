"""Importing the real SmolLM2 base model: GGUF -> safetensors, same generations, clean text."""

from __future__ import annotations

import pytest

from train_jobs.base_models import (
    ModelImportError,
    import_base_model,
    is_model_folder,
    prepare_base_model,
    smollm2_gguf,
)


def _greedy(folder_kwargs: dict, prompt: str) -> str:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(**folder_kwargs)
    model = AutoModelForCausalLM.from_pretrained(**folder_kwargs, dtype=torch.float32)
    inputs = tok.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True,
        return_tensors="pt", return_dict=True,
    )
    out = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    return tok.decode(out[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def test_converted_folder_generates_exactly_like_the_gguf(smollm2_folder):
    gguf = smollm2_gguf()
    assert is_model_folder(smollm2_folder)
    prompt = "Name three colors of the rainbow."
    from_gguf = _greedy({"pretrained_model_name_or_path": gguf.parent, "gguf_file": gguf.name},
                        prompt)
    from_folder = _greedy({"pretrained_model_name_or_path": smollm2_folder}, prompt)
    assert from_folder == from_gguf
    assert len(from_folder.split()) >= 3
    for piece in ("Ġ", "Ċ"):
        assert piece not in from_folder


def test_import_registers_base_model_once(smollm2_folder, store, tmp_path, monkeypatch):
    monkeypatch.setenv("GARDEN_HOME", str(tmp_path))
    first = import_base_model(store, smollm2_folder, name="smol")
    assert first.kind == "base" and first.size_bytes > 100_000_000
    assert first.config["model_type"] == "llama"
    assert is_model_folder(first.path) and first.path.startswith(str(tmp_path))
    again = import_base_model(store, smollm2_folder, name="smol")
    assert again.id == first.id
    assert store.models.list(kind="base").total == 1


def test_bad_sources_are_rejected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelImportError, match="not a Hugging Face model folder"):
        prepare_base_model(tmp_path / "empty", "x")
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(ModelImportError, match=r"expected a \.gguf file"):
        prepare_base_model(tmp_path / "weights.bin", "x")
