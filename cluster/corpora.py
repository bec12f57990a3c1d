"""Instruction corpora installed with the project, for drivers that prepare data before
uploading it through the gateway (``garden demo``, benchmarks).

The readers live in :mod:`train_jobs.datasets`; this module is how layers above
``cluster`` (``garden.demo``) reach them without importing ``train_jobs`` (DESIGN.md's
layering). Reading is light (YAML files of the installed package), so it runs in the
caller's process.
"""

from __future__ import annotations

from typing import Any


def chatterbot_pairs(categories: list[str] | None = None) -> list[dict[str, Any]]:
    """Prompt/reply pairs of the installed ``chatterbot-corpus`` (about 2,300 English
    pairs), as OpenAI-format rows ``{"messages": [{"role": "user", ...},
    {"role": "assistant", ...}]}``; see :func:`train_jobs.datasets.chatterbot_pairs`.

    Raises:
        FileNotFoundError: the package is not installed (``pip install chatterbot-corpus``).
        train_jobs.datasets.DatasetError: an unknown category was asked for.
    """
    from train_jobs.datasets import chatterbot_pairs as read_pairs

    return read_pairs(categories)
