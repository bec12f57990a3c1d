"""Merge a LoRA adapter into its base model's weights: a new base model.

PEFT's ``LoraModel.merge_and_unload`` (``peft/tuners/lora/model.py``; the delta is
``LoraLayer.get_delta_weight`` in ``peft/tuners/lora/layer.py``) replaces each wrapped
linear layer's weight ``W`` (``out_features x in_features``) by

    W' = W + (lora_alpha / r) * B @ A

with ``A`` the adapter's ``lora_A`` (``r x in_features``) and ``B`` its ``lora_B``
(``out_features x r``), and drops the LoRA modules: the result is a plain transformers
model of the base's architecture and shapes, which generates exactly what the base with
the adapter applied generates, and which vLLM serves as a base model (no LoRA slot).

The merged folder (safetensors weights, ``config.json``, ``generation_config.json`` and
the base's tokenizer files) is stored at a fresh location under the storage root
(``models/<name>-v<version>-<random>``, :func:`train_jobs.base_models.writing_model`, so an
object-store root works) and registered as a base model whose lineage names both the
base (``base_model_id``) and the adapter (``merged_from_id``).
"""

from __future__ import annotations

from pathlib import Path

from catalog import schemas as s
from catalog import storage
from catalog.errors import Conflict, InvalidArgument
from catalog.port import CatalogPort
from train_jobs.base_models import is_stored_model, model_location, writing_model


def merge_adapter(
    catalog: CatalogPort, adapter: s.Model, name: str | None = None,
    user_id: str | None = None,
) -> s.Model:
    """Merge ``adapter`` into its base model and register the result (kind ``base``).

    Args:
        catalog: the catalog (a :class:`catalog.port.CatalogPort`).
        adapter: a registered model of kind ``adapter``.
        name: the merged model's catalog name; None: ``<adapter name>-merged``. It is
            registered as the next version of that name.
        user_id: the owner of the merged model (the caller).

    Returns the registered model: ``kind="base"``, ``base_model_id`` the adapter's base,
    ``merged_from_id`` the adapter, ``config`` the base's config plus ``merged_from``
    (the adapter's id) and ``lora`` (the adapter's LoRA settings, when recorded),
    ``size_bytes`` the stored size. Weights are saved in the base's dtype (loaded with
    ``dtype="auto"``: a float32 base, as imported from GGUF for CPU, stays float32).

    Idempotent: a base model already merged from ``adapter`` for ``user_id`` (with
    ``name``, when given) whose files are in place (:func:`is_stored_model`) is returned
    as is, and nothing is merged.

    Raises:
        InvalidArgument: ``adapter`` is not an adapter (``field="model_id"``).
        NotFound: its base model is no longer registered.
        FileNotFoundError: the base's or the adapter's files are missing.
        Conflict: ``name``'s next version was registered meanwhile (the merged files are
            removed).
        OSError: the store refused a read or write.
    """
    if adapter.kind != s.ModelKind.adapter or not adapter.base_model_id:
        raise InvalidArgument(
            f"{adapter.id} ({adapter.name}) is a base model, not an adapter: only a LoRA "
            "adapter can be merged", field="model_id")
    done = catalog.models.list(kind=s.ModelKind.base, merged_from_id=adapter.id,
                               user_id=user_id, name=name, page_size=100)
    for model in done.items:
        if is_stored_model(model.path):
            return model
    base = catalog.models.get(adapter.base_model_id)
    name = name or f"{adapter.name}-merged"
    version = catalog.next_version("models", name)
    dest = model_location(storage.fresh(f"{name}-v{version}"))
    with writing_model(dest) as folder:
        merge_folders(storage.local_copy(base.path), storage.local_copy(adapter.path), folder)
    config = {**base.config, "merged_from": adapter.id, "lora": adapter.config.get("lora")}
    try:
        return catalog.register_model(s.ModelCreate(
            name=name, version=version, kind=s.ModelKind.base, path=dest,
            description=f"{base.name} with the LoRA adapter {adapter.name} "
            f"v{adapter.version} ({adapter.id}) merged into its weights",
            base_model_id=base.id, merged_from_id=adapter.id, config=config,
            size_bytes=storage.size_bytes(dest), user_id=user_id,
        ))
    except Conflict:
        storage.delete(dest)
        raise


def merge_folders(base_folder: Path, adapter_folder: Path, out: Path) -> Path:
    """Write ``base_folder``'s model with the PEFT adapter at ``adapter_folder`` merged in
    (``PeftModel.from_pretrained(...).merge_and_unload()``, see the module docstring) to
    ``out`` as safetensors, with the base's tokenizer files. Loads on CPU in the base's
    dtype; peak memory about twice the base's weights. Returns ``out``.

    Raises:
        OSError: a folder is missing or unreadable (transformers' and PEFT's errors).
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base_folder, dtype="auto")
    merged = PeftModel.from_pretrained(model, adapter_folder).merge_and_unload()
    merged.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(base_folder).save_pretrained(out)
    return out

