"""Each dataset format converts to the exact internal chat record; bad rows name their field."""

from __future__ import annotations

import pytest

from corpora.formats import CONVERTERS, detect_format, is_preference, to_messages, to_record


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


def user(text):
    return {"role": "user", "content": text}


def bot(text):
    return {"role": "assistant", "content": text}


OPENAI_DPO = {
    "input": {"messages": [{"role": "system", "content": "Be kind."}, user("Hi")],
              "tools": [], "parallel_tool_calls": True},
    "preferred_output": [bot("Hello! How can I help?")],
    "non_preferred_output": [bot("What.")],
}


@pytest.mark.parametrize(("row", "fmt", "expected"), [
    ({"prompt": "Sky colour?", "chosen": "Blue.", "rejected": "Green."}, "preference",
     {"prompt": [user("Sky colour?")], "chosen": [bot("Blue.")], "rejected": [bot("Green.")]}),
    ({"prompt": [{"role": "system", "content": "Terse."}, user("2+2?"), bot("4"),
                 user("Times 3?")],
      "chosen": [{"role": "assistant", "content": "12", "weight": 1}],
      "rejected": [bot("7")]}, "preference",
     {"prompt": [{"role": "system", "content": "Terse."}, user("2+2?"), bot("4"),
                 user("Times 3?")],
      "chosen": [bot("12")], "rejected": [bot("7")]}),
    ({"prompt": [user("Hi")], "chosen": "Hello", "rejected": [bot("Go away")]}, "preference",
     {"prompt": [user("Hi")], "chosen": [bot("Hello")], "rejected": [bot("Go away")]}),
    (OPENAI_DPO, "openai_preference",
     {"prompt": [{"role": "system", "content": "Be kind."}, user("Hi")],
      "chosen": [bot("Hello! How can I help?")], "rejected": [bot("What.")]}),
])
def test_preference_converters_give_exact_records(row, fmt, expected):
    assert detect_format(row) == fmt
    assert is_preference(fmt)
    assert CONVERTERS[fmt].validate(row) == []
    assert to_record(row, fmt) == expected


@pytest.mark.parametrize(("row", "field", "message"), [
    ({"prompt": "q", "chosen": "a"}, "rejected", "is required"),
    ({"chosen": "a", "rejected": "b"}, "prompt", "is required"),
    ({"prompt": "q", "chosen": "same", "rejected": "same"}, "rejected", "must differ from chosen"),
    ({"prompt": "q", "chosen": [bot("same")], "rejected": "same"}, "rejected",
     "must differ from chosen"),
    ({"prompt": [user("q"), bot("a")], "chosen": "b", "rejected": "c"}, "prompt.1",
     "last turn must be the user"),
    ({"prompt": [{"role": "system", "content": "s"}], "chosen": "b", "rejected": "c"},
     "prompt.0", "last turn must be the user"),
    ({"prompt": 3, "chosen": "b", "rejected": "c"}, "prompt",
     "must be a string or a list of messages, got int"),
    ({"prompt": "", "chosen": "b", "rejected": "c"}, "prompt", "must not be empty"),
    ({"prompt": [], "chosen": "b", "rejected": "c"}, "prompt", "non-empty list"),
    ({"prompt": [user("q"), {"role": "robot", "content": "x"}], "chosen": "b", "rejected": "c"},
     "prompt.1.role", "must be one of"),
    ({"prompt": "q", "chosen": {"role": "assistant", "content": "a"}, "rejected": "c"},
     "chosen", "must be a string or a list of one assistant message, got dict"),
    ({"prompt": "q", "chosen": [bot("a"), bot("b")], "rejected": "c"}, "chosen",
     "got 2 messages"),
    ({"prompt": "q", "chosen": [user("a")], "rejected": "c"}, "chosen.0.role",
     "must be 'assistant'"),
    ({"prompt": "q", "chosen": "a", "rejected": [bot(5)]}, "rejected.0.content",
     "must be a string, got int"),
    ({"prompt": "q", "chosen": ["a"], "rejected": "c"}, "chosen.0", "must be an object"),
    ({"prompt": "q", "chosen": "  ", "rejected": "c"}, "chosen", "must not be empty"),
    ({"preferred_output": [bot("a")], "non_preferred_output": [bot("b")]}, "input",
     "is required"),
    ({**OPENAI_DPO, "input": {"messages": [user("Hi"), {"role": "user"}]}},
     "input.messages.1.content", "is required"),
    ({**OPENAI_DPO, "input": {"messages": [user("Hi"), {"role": "tool", "content": "x"}]}},
     "input.messages.1.role", "must be one of"),
    ({**OPENAI_DPO, "input": {"messages": [user("Hi"), bot("Hey")]}}, "input.messages.1",
     "last turn must be the user"),
    ({**OPENAI_DPO, "input": {"prompt": "Hi"}}, "input.messages", "non-empty list"),
    ({**OPENAI_DPO, "input": "Hi"}, "input", "must be an object, got str"),
    ({**OPENAI_DPO, "preferred_output": "Hello"}, "preferred_output",
     "must be a list of one assistant message, got str"),
    ({k: v for k, v in OPENAI_DPO.items() if k != "non_preferred_output"},
     "non_preferred_output", "is required"),
    ({**OPENAI_DPO, "non_preferred_output": OPENAI_DPO["preferred_output"]},
     "non_preferred_output", "must differ from preferred_output"),
    ({**OPENAI_DPO, "preferred_output": [{"role": "system", "content": "x"}]},
     "preferred_output.0.role", "must be 'assistant'"),
])
def test_invalid_preference_rows_name_the_field(row, field, message):
    errors = CONVERTERS[detect_format(row)].validate(row)
    assert errors, row
    assert errors[0].field == field
    assert message in errors[0].message


def test_every_error_of_a_preference_row_is_listed():
    errors = CONVERTERS["preference"].validate(
        {"prompt": [bot("a")], "chosen": [user("b")], "rejected": 1})
    assert [e.field for e in errors] == ["prompt.0", "chosen.0.role", "rejected"]


@pytest.mark.parametrize(("row", "fmt"), [
    ({"instruction": "x", "output": "y"}, "alpaca"),
    ({"instruction": "x", "input": "ctx", "output": "y"}, "alpaca"),
    ({"conversations": []}, "sharegpt"),
    ({"messages": []}, "openai"),
    ({"prompt": "x", "chosen": "y", "rejected": "z"}, "preference"),
    ({"prompt": "x", "rejected": "z"}, "preference"),
    ({"input": {"messages": []}, "preferred_output": [], "non_preferred_output": []},
     "openai_preference"),
    ({"input": {"messages": []}, "non_preferred_output": []}, "openai_preference"),
    ({"prompt": "x"}, None),
    ({"input": "x"}, None),
    ({}, None),
])
def test_detection_of_every_format(row, fmt):
    assert detect_format(row) == fmt


def test_to_record_of_a_chat_is_its_messages_and_to_messages_refuses_preferences():
    row = {"instruction": "Hi", "output": "Hello"}
    assert to_record(row, "alpaca") == to_messages(row, "alpaca") == {
        "messages": [user("Hi"), bot("Hello")]}
    assert not is_preference("openai")
    with pytest.raises(ValueError, match="use to_record"):
        to_messages({"prompt": "q", "chosen": "a", "rejected": "b"}, "preference")
    with pytest.raises(ValueError):
        to_record(row, "klingon")
