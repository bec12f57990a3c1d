"""Dataset formats: one converter class per format, registered by name.

Every row of every format becomes one internal record, a chat::

    {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}

ending with an assistant turn (the tokens the model learns). The converters
follow LLaMA-Factory's ``data/converter.py`` (Alpaca, ShareGPT, OpenAI) and the
formats' own definitions:

- alpaca: ``{"instruction", "input"?, "output", "system"?}``
  (https://github.com/tatsu-lab/stanford_alpaca#data-release)
- sharegpt: ``{"conversations": [{"from": "human"|"gpt"|"system", "value"}]}``
- openai: ``{"messages": [{"role": "system"|"user"|"assistant", "content"}]}``
  (https://platform.openai.com/docs/guides/supervised-fine-tuning)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from catalog.schemas import DatasetFormat


@dataclass(frozen=True)
class RowError:
    """One problem in one row. ``field`` is a dotted path such as ``messages.2.content``."""

    field: str
    message: str


class Converter:
    """Validates and converts rows of one format. Subclasses set ``name`` and ``keys``."""

    name: ClassVar[DatasetFormat]
    #: The top-level key whose presence identifies the format.
    marker: ClassVar[str]

    def validate(self, row: dict[str, Any]) -> list[RowError]:
        """Every problem of ``row`` (empty when it converts cleanly)."""
        raise NotImplementedError

    def convert(self, row: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
        """The internal ``{"messages": [...]}`` record of a valid row."""
        raise NotImplementedError


def _text_error(row: dict, field: str, *, required: bool = True) -> RowError | None:
    value = row.get(field)
    if value is None:
        return RowError(field, "is required") if required else None
    if not isinstance(value, str):
        return RowError(field, f"must be a string, got {type(value).__name__}")
    if required and not value.strip():
        return RowError(field, "must not be empty")
    return None


def _turns_errors(
    turns: Any, field: str, role_key: str, text_key: str, roles: dict[str, str]
) -> list[RowError]:
    """Check a list of chat turns: known roles, string texts, ends with an assistant turn."""
    if not isinstance(turns, list) or not turns:
        return [RowError(field, "must be a non-empty list")]
    errors: list[RowError] = []
    for i, turn in enumerate(turns):
        where = f"{field}.{i}"
        if not isinstance(turn, dict):
            errors.append(RowError(where, "must be an object"))
            continue
        role = turn.get(role_key)
        if role not in roles:
            errors.append(RowError(f"{where}.{role_key}", f"must be one of {sorted(roles)}"))
        err = _text_error(turn, text_key)
        if err is not None:
            errors.append(RowError(f"{where}.{err.field}", err.message))
    if not errors:
        mapped = [roles[t[role_key]] for t in turns]
        if "assistant" not in mapped:
            errors.append(RowError(field, "needs at least one assistant turn"))
        elif mapped[-1] != "assistant":
            errors.append(RowError(f"{field}.{len(turns) - 1}", "last turn must be the assistant"))
    return errors


class AlpacaConverter(Converter):
    """``instruction`` (+ optional ``input``, appended after a blank line) -> user; ``output``
    -> assistant; optional ``system``."""

    name = DatasetFormat.alpaca
    marker = "instruction"

    def validate(self, row):
        errors = [_text_error(row, "instruction"), _text_error(row, "output"),
                  _text_error(row, "input", required=False),
                  _text_error(row, "system", required=False)]
        return [e for e in errors if e is not None]

    def convert(self, row):
        prompt = row["instruction"]
        if row.get("input"):
            prompt = f"{prompt}\n\n{row['input']}"
        messages = [{"role": "system", "content": row["system"]}] if row.get("system") else []
        messages += [{"role": "user", "content": prompt},
                     {"role": "assistant", "content": row["output"]}]
        return {"messages": messages}


class ShareGPTConverter(Converter):
    """``conversations`` of ``{"from", "value"}``; ``human``/``user`` -> user,
    ``gpt``/``assistant`` -> assistant, ``system`` -> system."""

    name = DatasetFormat.sharegpt
    marker = "conversations"
    roles: ClassVar[dict[str, str]] = {
        "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
        "system": "system",
    }

    def validate(self, row):
        return _turns_errors(row.get("conversations"), "conversations", "from", "value",
                             self.roles)

    def convert(self, row):
        return {"messages": [{"role": self.roles[t["from"]], "content": t["value"]}
                             for t in row["conversations"]]}


class OpenAIConverter(Converter):
    """OpenAI chat fine-tuning rows: ``messages`` of ``{"role", "content"}``."""

    name = DatasetFormat.openai
    marker = "messages"
    roles: ClassVar[dict[str, str]] = {"system": "system", "user": "user",
                                       "assistant": "assistant"}

    def validate(self, row):
        return _turns_errors(row.get("messages"), "messages", "role", "content", self.roles)

    def convert(self, row):
        return {"messages": [{"role": t["role"], "content": t["content"]}
                             for t in row["messages"]]}


CONVERTERS: dict[DatasetFormat, Converter] = {
    c.name: c for c in (AlpacaConverter(), ShareGPTConverter(), OpenAIConverter())
}


def detect_format(row: Any) -> DatasetFormat | None:
    """The format whose marker key (instruction, conversations, messages) ``row`` has, or None."""
    if not isinstance(row, dict):
        return None
    for name, converter in CONVERTERS.items():
        if converter.marker in row:
            return name
    return None


def to_messages(row: dict[str, Any], fmt: DatasetFormat | str) -> dict[str, list[dict]]:
    """Convert one valid row of format ``fmt`` to the internal chat record."""
    return CONVERTERS[DatasetFormat(fmt)].convert(row)
