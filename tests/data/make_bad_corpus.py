"""Writes tests/data/bad/: malformed dataset files and expected.json, the row/line/field that the
loader must report for each. Run: python tests/data/make_bad_corpus.py (output is committed)."""

import json
from pathlib import Path

HERE = Path(__file__).parent / "bad"
A = {"instruction": "Name a colour.", "output": "Blue."}
A2 = {"instruction": "Name a fruit.", "output": "Apple."}
M = lambda *turns: {"messages": [{"role": r, "content": c} for r, c in turns]}  # noqa: E731
OK_M = M(("user", "hi"), ("assistant", "hello"))
S = lambda *turns: {"conversations": [{"from": f, "value": v} for f, v in turns]}  # noqa: E731
OK_S = S(("human", "hi"), ("gpt", "hello"))
P = {"prompt": "Say hi.", "chosen": "Hi!", "rejected": "No."}
K = {"prompt": "Say hi.", "completion": "Hi!", "label": True}


def jl(*rows) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


# name -> (content, [[row, line, field, kind, severity], ...])
CASES = {
    "broken_json_line.jsonl": (jl(A, b'{"instruction": "q", "output": ', A2), [[2, 2, "(line)", "broken JSON", "error"]]),
    "invalid_utf8_line.jsonl": (jl(A, b'{"instruction": "caf\xe9", "output": "x"}', A2), [[2, 2, "(line)", "invalid UTF-8", "error"]]),
    "missing_output.jsonl": (jl(A, {"instruction": "q", "response": "x"}, A2), [[2, 2, "output", "missing field", "error"]]),
    "empty_output.jsonl": (jl(A, {"instruction": "q", "output": ""}, A2), [[2, 2, "output", "empty response", "error"]]),
    "whitespace_output.jsonl": (jl(A, A2, {"instruction": "q", "output": "  \n "}), [[3, 3, "output", "empty response", "error"]]),
    "nonstring_instruction.jsonl": (jl({"instruction": 42, "output": "x"}, A, A2), [[1, 1, "instruction", "wrong type", "error"]]),
    "nonstring_output_list.jsonl": (jl(A, {"instruction": "q", "output": ["a"]}, A2), [[2, 2, "output", "wrong type", "error"]]),
    "alpaca_bad_history.jsonl": (jl(A, {"instruction": "q", "output": "a", "history": "earlier"}, A2), [[2, 2, "history", "wrong type", "error"]]),
    "messages_nonstring_content.jsonl": (jl(OK_M, {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": 5}]}), [[2, 2, "messages[1].content", "wrong type", "error"]]),
    "messages_missing_content.jsonl": (jl(OK_M, {"messages": [{"role": "user", "content": "q"}, {"role": "assistant"}]}), [[2, 2, "messages[1].content", "missing field", "error"]]),
    "messages_unknown_role.jsonl": (jl(OK_M, {"messages": [{"role": "user", "content": "q"}, {"role": "bot", "content": "a"}]}), [[2, 2, "messages[1].role", "unknown role", "error"]]),
    "messages_two_users.jsonl": (jl(M(("user", "a"), ("user", "b"), ("assistant", "c")), OK_M), [[1, 1, "messages[1]", "turn order", "error"]]),
    "messages_starts_with_assistant.jsonl": (jl(OK_M, M(("assistant", "a"), ("user", "b"), ("assistant", "c"))), [[2, 2, "messages", "turn order", "error"]]),
    "messages_ends_with_user.jsonl": (jl(OK_M, M(("user", "a"), ("assistant", "b"), ("user", "c"))), [[2, 2, "messages", "turn order", "error"]]),
    "messages_empty_list.jsonl": (jl(OK_M, {"messages": []}), [[2, 2, "messages", "wrong type", "error"]]),
    "messages_system_in_middle.jsonl": (jl(OK_M, M(("user", "a"), ("assistant", "b"), ("system", "c"), ("user", "d"), ("assistant", "e"))), [[2, 2, "messages[2]", "turn order", "error"]]),
    "messages_empty_reply.jsonl": (jl(M(("user", "a"), ("assistant", " ")), OK_M), [[1, 1, "messages[1].content", "empty response", "error"]]),
    "sharegpt_unknown_from.jsonl": (jl(OK_S, S(("robot", "a"), ("gpt", "b"))), [[2, 2, "conversations[0].from", "unknown role", "error"]]),
    "sharegpt_gpt_first.jsonl": (jl(OK_S, S(("gpt", "a"), ("human", "b"), ("gpt", "c"))), [[2, 2, "conversations", "turn order", "error"]]),
    "sharegpt_not_a_list.jsonl": (jl(OK_S, {"conversations": "hello"}), [[2, 2, "conversations", "wrong type", "error"]]),
    "sharegpt_tool_after_user.jsonl": (jl(OK_S, S(("human", "a"), ("observation", "{}"), ("gpt", "b"))), [[2, 2, "conversations[1]", "turn order", "error"]]),
    "preference_identical.jsonl": (jl(P, {"prompt": "q", "chosen": "same", "rejected": "same"}), [[2, 2, "rejected", "chosen = rejected", "error"]]),
    "preference_missing_prompt.jsonl": (jl(P, {"chosen": "a", "rejected": "b"}), [[2, 2, "prompt", "missing field", "error"]]),
    "preference_empty_chosen.jsonl": (jl(P, {"prompt": "q", "chosen": "", "rejected": "b"}), [[2, 2, "chosen", "empty response", "error"]]),
    "kto_bad_label.jsonl": (jl(K, {"prompt": "q", "completion": "a", "label": "maybe"}), [[2, 2, "label", "wrong type", "error"]]),
    "kto_empty_completion.jsonl": (jl(K, {"prompt": "q", "completion": "", "label": False}), [[2, 2, "completion", "empty response", "error"]]),
    "prompt_completion_empty.jsonl": (jl({"prompt": "q", "completion": "a"}, {"prompt": "q2", "completion": " "}), [[2, 2, "completion", "empty response", "error"]]),
    "prompt_only_empty.jsonl": (jl({"prompt": "q"}, {"prompt": ""}), [[2, 2, "prompt", "empty field", "error"]]),
    "mixed_schema.jsonl": (jl(A, A2, OK_M, {"instruction": "x", "output": "y"}), [[3, 3, "(row)", "mixed schema", "error"]]),
    "duplicate_rows.jsonl": (jl(A, A2, A), [[3, 3, "(row)", "duplicate", "warning"]]),
    "not_an_object.jsonl": (jl(A, b"[1, 2]", A2), [[2, 2, "(row)", "wrong type", "error"]]),
    "blank_lines_shift.jsonl": (jl(A) + b"\n\n" + jl(b"{broken", A2), [[2, 4, "(line)", "broken JSON", "error"]]),
    "csv_missing_cell.csv": (b"instruction,output\nq1,a1\nq2\nq3,a3\n", [[2, 3, "(line)", "wrong column count", "error"]]),
    "csv_empty_output.csv": (b'instruction,output\n"multi\nline",a1\nq2,\n', [[2, 4, "output", "empty response", "error"]]),
    "tsv_empty_instruction.tsv": (b"instruction\toutput\nq1\ta1\n \ta2\n", [[2, 3, "instruction", "empty field", "error"]]),
    "json_array_bad_item.json": (json.dumps([A, A2, {"instruction": "q"}], indent=2).encode(), [[3, 10, "output", "missing field", "error"]]),
    "json_array_truncated.json": (b'[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c", "output": "d"},\n  {"instruction": "e", "output": \n]\n', [[3, 5, "(file)", "broken JSON", "error"]]),
    "text_invalid_utf8.txt": (b"first document\n\nsecond \xff document\n\nthird\n", [[2, 3, "(line)", "invalid UTF-8", "error"]]),
}

# name -> (content, substrings of the one-line error for a file with nothing usable)
FILE_ERRORS = {
    "empty.jsonl": (b"", ["empty"]),
    "unknown_fields.jsonl": (jl({"question": "q", "answer": "a"}), ["cannot tell the dataset format", "answer", "question"]),
    "utf16.jsonl": ('{"instruction": "q", "output": "a"}\n'.encode("utf-16"), ["not valid UTF-8", "line 1"]),
    "broken_json_array.json": (b'[\n  {"instruction": "a", "output": }\n]\n', ["not valid JSON", "line 2"]),
    "csv_repeated_header.csv": (b"instruction,instruction\nq,a\n", ["repeated column names", "line 1"]),
    "all_rows_bad.jsonl": (jl({"instruction": "q", "output": ""}, {"instruction": "r", "output": " "}), ["no usable examples", "row 1 (line 1)", "output"]),
}

if __name__ == "__main__":
    HERE.mkdir(exist_ok=True)
    expected = {"problems": {}, "file_errors": {}}
    for name, (content, problems) in CASES.items():
        (HERE / name).write_bytes(content)
        expected["problems"][name] = problems
    for name, (content, needles) in FILE_ERRORS.items():
        (HERE / name).write_bytes(content)
        expected["file_errors"][name] = needles
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(f"wrote {len(CASES) + len(FILE_ERRORS)} files to {HERE}")
