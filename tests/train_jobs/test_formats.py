"""Each dataset format converts to the exact internal chat record; bad rows name their field."""

from __future__ import annotations

import pytest

from train_jobs.formats import CONVERTERS, detect_format, to_messages


@pytest.mark.parametrize(("row", "fmt", "expected"), [
    ({"instruction": "Add", "input": "2 and 3", "output": "5"}, "alpaca",
     [{"role": "user", "content": "Add\n\n2 and 3"}, {"role": "assistant", "content": "5"}]),
    ({"instruction": "Hi", "output": "Hello", "system": "Be brief."}, "alpaca",
     [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hello"}]),
    ({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"},
                        {"from": "human", "value": "Bye"}, {"from": "gpt", "value": "Ciao"}]},
     "sharegpt",
     [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"},
      {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Ciao"}]),
    ({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                   {"role": "assistant", "content": "A"}]}, "openai",
     [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
      {"role": "assistant", "content": "A"}]),
])
def test_converters_give_exact_chats(row, fmt, expected):
    assert detect_format(row) == fmt
    assert CONVERTERS[fmt].validate(row) == []
    assert to_messages(row, fmt) == {"messages": expected}


@pytest.mark.parametrize(("row", "field", "message"), [
    ({"instruction": "", "output": "x"}, "instruction", "must not be empty"),
    ({"instruction": "x", "output": 3}, "output", "must be a string, got int"),
    ({"conversations": [{"from": "robot", "value": "x"}]}, "conversations.0.from",
     "must be one of"),
    ({"conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "b"}]},
     "conversations.1", "last turn must be the assistant"),
    ({"messages": []}, "messages", "non-empty list"),
    ({"messages": [{"role": "user", "content": "only a question"}]}, "messages",
     "needs at least one assistant turn"),
    ({"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]},
     "messages.0.content", "is required"),
])
def test_invalid_rows_name_the_field(row, field, message):
    errors = CONVERTERS[detect_format(row)].validate(row)
    assert errors, row
    assert errors[0].field == field
    assert message in errors[0].message


def test_unknown_shapes_have_no_format():
    assert detect_format({"prompt": "x", "completion": "y"}) is None
    assert detect_format(["not", "an", "object"]) is None
