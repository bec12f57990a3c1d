"""Dataset formats: one converter class per format, registered by name.

Every row of a chat format (for sft) becomes one internal record, a chat::

    {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}

ending with an assistant turn (the tokens the model learns). Every row of a
preference format (for dpo, :data:`catalog.schemas.PREFERENCE_FORMATS`) becomes
TRL's conversational preference record::

    {"prompt": [{"role": "system"|"user"|"assistant", "content": str}, ..., user turn],
     "chosen": [{"role": "assistant", "content": str}],
     "rejected": [{"role": "assistant", "content": str}]}

with ``chosen`` and ``rejected`` different. The converters follow LLaMA-Factory's
``data/converter.py`` (Alpaca, ShareGPT, OpenAI) and the formats' own definitions:

- alpaca: ``{"instruction", "input"?, "output", "system"?}``
  (https://github.com/tatsu-lab/stanford_alpaca#data-release)
- sharegpt: ``{"conversations": [{"from": "human"|"gpt"|"system", "value"}]}``
- openai: ``{"messages": [{"role": "system"|"user"|"assistant", "content"}]}``
  (https://platform.openai.com/docs/guides/supervised-fine-tuning)
- preference: ``{"prompt", "chosen", "rejected"}``, each a string or a list of
  ``{"role", "content"}`` messages (TRL's explicit-prompt preference format,
  https://huggingface.co/docs/trl/dataset_formats#preference)
- openai_preference: ``{"input": {"messages": [...]}, "preferred_output": [assistant
  message], "non_preferred_output": [assistant message]}``
  (https://platform.openai.com/docs/guides/direct-preference-optimization)

Batch request files (:data:`catalog.schemas.BATCH_FORMATS`) are checked too, but nothing
trains on them, so their converter has no ``convert``:

- openai_batch: ``{"custom_id", "method": "POST", "url": "/v1/chat/completions" |
  "/v1/completions", "body": {...}}`` (https://platform.openai.com/docs/guides/batch);
  only the line's structure is checked here (the batch job checks each body).
- openai_batch_output: ``{"id", "custom_id", "response": {...} | null, "error": {...} |
  null}``, the output and error files of a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from catalog.schemas import BATCH_FORMATS, PREFERENCE_FORMATS, DatasetFormat


@dataclass(frozen=True)
class RowError:
    """One problem in one row. ``field`` is a dotted path such as ``messages.2.content``."""

    field: str
    message: str


class Converter:
    """Validates and converts rows of one format. Subclasses set ``name``, ``markers``
    and ``needs``."""

    name: ClassVar[DatasetFormat]
    #: Top-level keys, any one of which identifies the format (see :func:`detect_format`).
    markers: ClassVar[tuple[str, ...]]
    #: The top-level keys a row of the format must have (for "not a known format" errors).
    needs: ClassVar[tuple[str, ...]]

    def matches(self, row: dict[str, Any]) -> bool:
        """Whether ``row`` looks like this format: it has one of the ``markers``."""
        return any(key in row for key in self.markers)

    def validate(self, row: dict[str, Any]) -> list[RowError]:
        """Every problem of ``row`` (empty when it converts cleanly)."""
        raise NotImplementedError

    def convert(self, row: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
        """The internal record of a valid row: ``{"messages": [...]}`` for a chat format,
        ``{"prompt", "chosen", "rejected"}`` for a preference format."""
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
    errors = _structure_errors(turns, field, role_key, text_key, roles)
    if not errors:
        mapped = [roles[t[role_key]] for t in turns]
        if "assistant" not in mapped:
            errors.append(RowError(field, "needs at least one assistant turn"))
        elif mapped[-1] != "assistant":
            errors.append(RowError(f"{field}.{len(turns) - 1}", "last turn must be the assistant"))
    return errors


def _structure_errors(
    turns: Any, field: str, role_key: str, text_key: str, roles: dict[str, str]
) -> list[RowError]:
    """Check a list of chat turns: a non-empty list of objects with known roles and texts."""
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
    return errors


class AlpacaConverter(Converter):
    """``instruction`` (+ optional ``input``, appended after a blank line) -> user; ``output``
    -> assistant; optional ``system``."""

    name = DatasetFormat.alpaca
    markers = ("instruction",)
    needs = ("instruction", "output")

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
    markers = ("conversations",)
    needs = ("conversations",)
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
    markers = ("messages",)
    needs = ("messages",)
    roles: ClassVar[dict[str, str]] = {"system": "system", "user": "user",
                                       "assistant": "assistant"}

    def validate(self, row):
        return _turns_errors(row.get("messages"), "messages", "role", "content", self.roles)

    def convert(self, row):
        return {"messages": [{"role": t["role"], "content": t["content"]}
                             for t in row["messages"]]}


_CHAT_ROLES: dict[str, str] = {"system": "system", "user": "user", "assistant": "assistant"}


def _prompt_errors(value: Any, field: str) -> list[RowError]:
    """A preference prompt: a non-empty string, or chat messages ending with a user turn."""
    if isinstance(value, str):
        return [] if value.strip() else [RowError(field, "must not be empty")]
    if value is None:
        return [RowError(field, "is required")]
    if not isinstance(value, list):
        return [RowError(field, "must be a string or a list of messages, "
                                f"got {type(value).__name__}")]
    errors = _structure_errors(value, field, "role", "content", _CHAT_ROLES)
    if not errors and value[-1]["role"] != "user":
        errors.append(RowError(f"{field}.{len(value) - 1}", "last turn must be the user"))
    return errors


def _reply_errors(value: Any, field: str, *, allow_string: bool) -> list[RowError]:
    """A preference reply: one assistant message (``[{"role": "assistant", "content"}]``),
    or, when ``allow_string``, a non-empty string."""
    if allow_string and isinstance(value, str):
        return [] if value.strip() else [RowError(field, "must not be empty")]
    if value is None:
        return [RowError(field, "is required")]
    shape = ("a string or " if allow_string else "") + "a list of one assistant message"
    if not isinstance(value, list):
        return [RowError(field, f"must be {shape}, got {type(value).__name__}")]
    if len(value) != 1:
        return [RowError(field, f"must be {shape}, got {len(value)} messages")]
    message = value[0]
    if not isinstance(message, dict):
        return [RowError(f"{field}.0", "must be an object")]
    errors = []
    if message.get("role") != "assistant":
        errors.append(RowError(f"{field}.0.role", "must be 'assistant'"))
    err = _text_error(message, "content")
    if err is not None:
        errors.append(RowError(f"{field}.0.{err.field}", err.message))
    return errors


def _chat(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _reply(value: str | list[dict[str, Any]]) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    return _chat(value)


def _pair_errors(row: dict[str, Any], chosen: str, rejected: str) -> list[RowError]:
    """``rejected`` must not equal ``chosen`` (checked once both are valid)."""
    if _reply(row[chosen]) == _reply(row[rejected]):
        return [RowError(rejected, f"must differ from {chosen}")]
    return []


class PreferenceConverter(Converter):
    """TRL's preference rows ``{"prompt", "chosen", "rejected"}`` (explicit prompt).

    Each field is a string or a list of ``{"role", "content"}`` messages: a string
    prompt becomes one user turn, a string reply one assistant turn. A prompt list
    may hold system, user and assistant turns and must end with a user turn;
    ``chosen`` and ``rejected`` lists must hold exactly one assistant message.
    """

    name = DatasetFormat.preference
    markers = ("chosen", "rejected")
    needs = ("prompt", "chosen", "rejected")

    def validate(self, row):
        errors = _prompt_errors(row.get("prompt"), "prompt")
        replies = [_reply_errors(row.get(f), f, allow_string=True) for f in ("chosen", "rejected")]
        errors += replies[0] + replies[1]
        if not replies[0] and not replies[1]:
            errors += _pair_errors(row, "chosen", "rejected")
        return errors

    def convert(self, row):
        prompt = row["prompt"]
        return {
            "prompt": [{"role": "user", "content": prompt}] if isinstance(prompt, str)
            else _chat(prompt),
            "chosen": _reply(row["chosen"]),
            "rejected": _reply(row["rejected"]),
        }


class OpenAIPreferenceConverter(Converter):
    """OpenAI's DPO rows: ``{"input": {"messages": [...], ...}, "preferred_output":
    [{"role": "assistant", "content"}], "non_preferred_output": [same]}``.

    ``input.messages`` is the prompt (must end with a user turn; other keys of
    ``input``, such as ``tools``, are ignored); the outputs become ``chosen`` and
    ``rejected``.
    """

    name = DatasetFormat.openai_preference
    markers = ("preferred_output", "non_preferred_output")
    needs = ("input", "preferred_output", "non_preferred_output")

    def validate(self, row):
        source = row.get("input")
        if source is None:
            errors = [RowError("input", "is required")]
        elif not isinstance(source, dict):
            errors = [RowError("input", f"must be an object, got {type(source).__name__}")]
        elif not isinstance(source.get("messages"), list):
            errors = [RowError("input.messages", "must be a non-empty list")]
        else:
            errors = _prompt_errors(source["messages"], "input.messages")
        replies = [_reply_errors(row.get(f), f, allow_string=False)
                   for f in ("preferred_output", "non_preferred_output")]
        errors += replies[0] + replies[1]
        if not replies[0] and not replies[1]:
            errors += _pair_errors(row, "preferred_output", "non_preferred_output")
        return errors

    def convert(self, row):
        return {
            "prompt": _chat(row["input"]["messages"]),
            "chosen": _chat(row["preferred_output"]),
            "rejected": _chat(row["non_preferred_output"]),
        }


class OpenAIBatchConverter(Converter):
    """Request lines of OpenAI's Batch API: ``{"custom_id": str, "method": "POST", "url":
    "/v1/chat/completions" | "/v1/completions", "body": object}``.

    Only the structure is checked (the body's own fields are the batch job's to check, line
    by line); the uniqueness of ``custom_id`` over a file is checked by the file reader
    (``corpora.registration``). Not trainable: :meth:`convert` raises ValueError.
    """

    name = DatasetFormat.openai_batch
    markers = ("custom_id",)
    needs = ("custom_id", "method", "url", "body")
    #: The endpoints a batch line may name (those our LLM app serves).
    urls: ClassVar[tuple[str, ...]] = ("/v1/chat/completions", "/v1/completions")

    def validate(self, row):
        errors = [e for e in (_text_error(row, "custom_id"),) if e is not None]
        if row.get("method") != "POST":
            errors.append(RowError("method", "must be 'POST'"))
        if row.get("url") not in self.urls:
            errors.append(RowError("url", f"must be one of {list(self.urls)}"))
        body = row.get("body")
        if not isinstance(body, dict):
            got = "missing" if body is None else f"got {type(body).__name__}"
            errors.append(RowError("body", f"must be an object, {got}"))
        return errors

    def convert(self, row):
        raise ValueError("openai_batch rows are batch requests: nothing trains on them")


class OpenAIBatchOutputConverter(Converter):
    """Output and error lines of OpenAI's Batch API: ``{"id": str, "custom_id": str,
    "response": {"status_code", "request_id", "body"} | null, "error": {"code", "message"} |
    null}``, with a response or an error. Detected by ``custom_id`` with ``response`` or
    ``error`` and no ``method``. Not trainable: :meth:`convert` raises ValueError.
    """

    name = DatasetFormat.openai_batch_output
    markers = ("response", "error")
    needs = ("id", "custom_id", "response", "error")

    def matches(self, row):
        return "custom_id" in row and "method" not in row and super().matches(row)

    def validate(self, row):
        errors = [e for e in (_text_error(row, "id"), _text_error(row, "custom_id"))
                  if e is not None]
        for key in ("response", "error"):
            value = row.get(key)
            if value is not None and not isinstance(value, dict):
                errors.append(RowError(key, f"must be an object or null, got "
                                            f"{type(value).__name__}"))
        if row.get("response") is None and row.get("error") is None:
            errors.append(RowError("response", "a line needs a response or an error"))
        return errors

    def convert(self, row):
        raise ValueError("openai_batch_output rows are batch results: nothing trains on them")


#: Every converter, by format. The batch formats come first, then preference formats:
#: their markers are the more specific ones when a row has keys of several formats.
CONVERTERS: dict[DatasetFormat, Converter] = {
    c.name: c for c in (OpenAIBatchOutputConverter(), OpenAIBatchConverter(),
                        OpenAIPreferenceConverter(), PreferenceConverter(), AlpacaConverter(),
                        ShareGPTConverter(), OpenAIConverter())
}


def detect_format(row: Any) -> DatasetFormat | None:
    """The format of ``row`` by its top-level keys, or None when no format matches.

    ``custom_id`` with ``response`` or ``error`` and no ``method`` -> openai_batch_output;
    ``custom_id`` -> openai_batch;
    ``preferred_output``/``non_preferred_output`` -> openai_preference;
    ``chosen``/``rejected`` -> preference; ``instruction`` -> alpaca;
    ``conversations`` -> sharegpt; ``messages`` -> openai (first match in that order).
    A row with only some of its format's keys is still detected, so that validation
    names the missing ones.
    """
    if not isinstance(row, dict):
        return None
    for name, converter in CONVERTERS.items():
        if converter.matches(row):
            return name
    return None


def is_preference(fmt: DatasetFormat | str) -> bool:
    """Whether ``fmt`` is a preference format (rows of prompt, chosen, rejected; for dpo).

    Raises:
        ValueError: ``fmt`` is not a :class:`DatasetFormat`.
    """
    return DatasetFormat(fmt) in PREFERENCE_FORMATS


def is_batch(fmt: DatasetFormat | str) -> bool:
    """Whether ``fmt`` is a batch inference format (not trainable).

    Raises:
        ValueError: ``fmt`` is not a :class:`DatasetFormat`.
    """
    return DatasetFormat(fmt) in BATCH_FORMATS


def to_record(row: dict[str, Any], fmt: DatasetFormat | str) -> dict[str, list[dict[str, str]]]:
    """Convert one valid row of format ``fmt`` to its internal record.

    Returns ``{"messages": [...]}`` for a chat format and ``{"prompt": [...],
    "chosen": [assistant message], "rejected": [assistant message]}`` for a preference
    format (see the module docstring). ``row`` must pass the converter's ``validate``.

    Raises:
        ValueError: ``fmt`` is not a :class:`DatasetFormat`, or is a batch format.
    """
    if is_batch(fmt):
        raise ValueError(f"{fmt} rows are batch lines: nothing trains on them")
    return CONVERTERS[DatasetFormat(fmt)].convert(row)


def to_messages(row: dict[str, Any], fmt: DatasetFormat | str) -> dict[str, list[dict]]:
    """Convert one valid row of chat format ``fmt`` to the internal chat record
    ``{"messages": [...]}``.

    Raises:
        ValueError: ``fmt`` is not a format, or is a preference format (use :func:`to_record`).
    """
    if is_preference(fmt):
        raise ValueError(f"{fmt} rows are preference pairs, not chats: use to_record")
    return to_record(row, fmt)
