"""The built-in corpus: chatterbot-corpus's English conversations as chat rows, preference
rows drawn from them, and their registration as a catalog dataset (``garden demo``, the
benchmarks and the tests prepare their data with these).
"""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import random
import tempfile
from pathlib import Path
from typing import Any

from catalog import schemas as s
from catalog import storage
from catalog.port import CatalogPort
from corpora.registration import DatasetError, register_dataset

CHATTERBOT_PACKAGE = "chatterbot-corpus"


def chatterbot_pairs(categories: list[str] | None = None) -> list[dict[str, Any]]:
    """Prompt/reply pairs of the installed ``chatterbot-corpus`` English YAML files.

    Each conversation ``[a, b, c, ...]`` gives the pairs ``(a, b), (b, c), ...``
    (ChatterBot's own training reads conversations the same way: each statement
    is a response to the previous one). Returns OpenAI-format rows.

    Raises:
        FileNotFoundError: the package is not installed (``pip install chatterbot-corpus``).
        DatasetError: an unknown category was asked for.
    """
    import yaml

    try:
        import chatterbot_corpus
    except ImportError as exc:
        raise FileNotFoundError(
            f"{CHATTERBOT_PACKAGE} is not installed: pip install {CHATTERBOT_PACKAGE}"
        ) from exc
    folder = Path(chatterbot_corpus.__file__).parent / "data" / "english"
    files = sorted(folder.glob("*.yml"))
    if categories:
        known = {f.stem for f in files}
        unknown = sorted(set(categories) - known)
        if unknown:
            raise DatasetError(f"unknown chatterbot categories {unknown}; known: {sorted(known)}",
                               field="categories")
        files = [f for f in files if f.stem in categories]
    rows = []
    for file in files:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        for conversation in data.get("conversations") or []:
            texts = [str(t).strip() for t in conversation if t is not None]
            for prompt, reply in itertools.pairwise(texts):
                if prompt and reply:
                    rows.append({"messages": [{"role": "user", "content": prompt},
                                              {"role": "assistant", "content": reply}]})
    return rows


def preference_pairs_from_chatterbot(
    rows: list[dict[str, Any]], seed: int = 0
) -> list[dict[str, str]]:
    """Preference rows made from chat pairs, for a DPO dataset of the chatterbot corpus.

    ``rows`` are OpenAI-format rows ``{"messages": [user, assistant]}`` (what
    :func:`chatterbot_pairs` returns). Row ``i`` gives ``{"prompt": <its user text>,
    "chosen": <its assistant reply>, "rejected": <the reply of another row, drawn at
    random among the rows whose reply differs>}`` (TRL's preference format, in the
    order of ``rows``). The draws use ``random.Random(seed)``: the same rows and seed
    give the same result.

    Raises:
        DatasetError: a row is not a ``[user, assistant]`` chat (``field`` names it), or
            all rows have the same reply (no rejected reply can be drawn).
    """
    prompts: list[str] = []
    replies: list[str] = []
    for i, row in enumerate(rows):
        messages = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(messages, list) or [
            (m.get("role"), isinstance(m.get("content"), str)) if isinstance(m, dict) else None
            for m in messages
        ] != [("user", True), ("assistant", True)]:
            raise DatasetError(f"row {i} is not a [user, assistant] chat with string contents",
                               field=f"rows.{i}")
        prompts.append(messages[0]["content"])
        replies.append(messages[1]["content"])
    if len(set(replies)) < 2:
        raise DatasetError("preference pairs need at least two different replies",
                           field="rows")
    rng = random.Random(seed)
    pairs = []
    for prompt, chosen in zip(prompts, replies, strict=True):
        for _ in range(32):  # rejection sampling: fast unless one reply dominates
            rejected = replies[rng.randrange(len(replies))]
            if rejected != chosen:
                break
        else:
            rejected = rng.choice([r for r in replies if r != chosen])
        pairs.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return pairs


def import_chatterbot(
    catalog: CatalogPort, name: str = "chatterbot-corpus", *, categories: list[str] | None = None
) -> s.Dataset:
    """Register the chatterbot-corpus pairs as an OpenAI-format dataset (idempotent).

    Returns the newest existing dataset called ``name`` when there is one.
    """
    existing = catalog.datasets.list(name=name, page_size=1)
    if existing.items:
        return existing.items[0]
    version = importlib.metadata.version(CHATTERBOT_PACKAGE)
    rows = chatterbot_pairs(categories)
    with tempfile.TemporaryDirectory(prefix="garden-chatterbot-") as staging:
        tmp = Path(staging) / f"{storage.safe_name(name)}.jsonl"
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                       encoding="utf-8")
        return register_dataset(
            catalog, tmp, name, source=f"{CHATTERBOT_PACKAGE}=={version}",
            description=f"chatterbot-corpus English prompt/reply pairs "
                        f"({', '.join(categories) if categories else 'all categories'})",
        )
