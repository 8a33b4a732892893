"""Dataset formats: detect one row's schema and convert it to the internal conversational form.

Internal form (one dict per example; every example has `messages`, the conversation to learn):
- alpaca, sharegpt, messages, prompt_completion: {"messages": [...]}
- preference: {"messages": prompt + chosen, "prompt": [...], "chosen": [assistant], "rejected": [assistant]}
- kto:        {"messages": prompt + completion, "prompt": [...], "completion": [assistant], "label": bool}
              (messages, sharegpt conversations or prompt/completion, with a boolean-like `label`, or
              LLaMA-Factory's `kto_tag`: true/false, 1/0, yes/no; true = desirable)
- prompt_only: {"messages": prompt, "prompt": [...]}
- text:       {"messages": [{"role": "assistant", "content": doc}], "text": doc}
A message is {"role": "system"|"user"|"assistant"|"tool", "content": str}; an assistant message that
calls tools also has "tool_calls": [{"type": "function", "function": {"name": str, "arguments": obj}}]
(OpenAI `tool_calls`, or a sharegpt `function_call` turn, whose value is the call's JSON). Tool results
(OpenAI role `tool`, sharegpt `observation`) are role "tool". A `tools` column (a list of function
schemas, or that list as a JSON string) becomes "tools": [{"type": "function", "function": schema}],
which `studio.data.render` hands to the chat template.

Placeholders (`find_placeholders`, `fill_placeholders`): unresolved template slots in the text, by one rule:
- `{{name}}` (spaces allowed inside): always;
- `{name}`: only an identifier in single braces, not preceded by a word character, `\`, `$`, `^`,
  `_` or another brace (so LaTeX `\frac{a}{b}`, `${x}` and `{{...}}` are not counted), and never
  JSON (`{"a": 1}`) since a quote is not an identifier;
- `<NAME>`: an UPPER_CASE identifier of 2+ characters in angle brackets, except HTML tags and
  tokenizer markers (<BR>, <EOS>, <PAD>...);
- never inside code: `inline code` and ``` fenced blocks are skipped.
"""

from __future__ import annotations

import json
import re
from collections import Counter

# Exact names, in detection order (the first that matches a row wins).
FORMATS = ("preference", "kto", "messages", "sharegpt", "alpaca", "prompt_completion", "prompt_only", "text")
FORMAT_HELP = {
    "alpaca": "instruction / input / output, optional system and history",
    "sharegpt": "conversations of from/value (human, gpt, system, function_call, observation)",
    "messages": "OpenAI-style messages of role/content",
    "prompt_completion": "prompt / completion",
    "preference": "prompt / chosen / rejected (text or message lists)",
    "kto": "prompt / completion / label (true = desirable)",
    "prompt_only": "prompt only (for PPO and Constitutional AI)",
    "text": "raw documents (continued pre-training)",
}
SFT_FORMATS = ("alpaca", "sharegpt", "messages", "prompt_completion")
# The columns each format reads (`split` marks a saved version's rows); every other column is "not used".
USED_COLUMNS = {
    "alpaca": ("instruction", "input", "output", "system", "history", "tools"),
    "sharegpt": ("conversations", "system", "tools"),
    "messages": ("messages", "tools"),
    "prompt_completion": ("prompt", "completion", "tools"),
    "preference": ("prompt", "chosen", "rejected", "conversations"),
    "kto": ("messages", "conversations", "system", "prompt", "completion", "label", "kto_tag", "tools"),
    "prompt_only": ("prompt",),
    "text": ("text",),
}
KTO_LABELS = ("label", "kto_tag")
TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes", "y", "t"), ("false", "0", "no", "n", "f")
SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
    "bard": "assistant", "model": "assistant", "system": "system", "function_call": "assistant",
    "tool_call": "assistant", "observation": "tool", "function_response": "tool", "tool": "tool",
}
ROLES = ("system", "user", "assistant", "tool")


class RowError(ValueError):
    """One row is unusable: which field, what is wrong, and a short category for the drop report."""

    def __init__(self, field: str, message: str, kind: str = "invalid"):
        self.field, self.message, self.kind = field, message, kind
        super().__init__(f"{field}: {message}")


def present(row: dict, key: str) -> bool:
    """CSV/Parquet rows carry every column; a None cell means the field is absent."""
    return key in row and row[key] is not None


def detect_format(row) -> str | None:
    if not isinstance(row, dict):
        return None
    has = lambda key: present(row, key)  # noqa: E731
    if has("chosen") and has("rejected"):
        return "preference"
    if any(has(k) for k in KTO_LABELS) and (has("messages") or has("conversations") or (has("prompt") and has("completion"))):
        return "kto"
    if has("messages"):
        return "messages"
    if has("conversations"):
        return "sharegpt"
    if has("instruction") and has("output"):
        return "alpaca"
    if has("prompt") and has("completion"):
        return "prompt_completion"
    if has("prompt"):
        return "prompt_only"
    if has("text"):
        return "text"
    return None


def _text(row: dict, name: str, *, required: bool = True, response: bool = False) -> str:
    if not present(row, name):
        if required:
            raise RowError(name, "missing field", "missing field")
        return ""
    value = row[name]
    if not isinstance(value, str):
        raise RowError(name, f"expected text, got {type(value).__name__}", "wrong type")
    if required and not value.strip():
        raise RowError(name, "empty response" if response else "empty text", "empty response" if response else "empty field")
    return value


def _turns(value, name: str, role_key: str, content_key: str, *, sharegpt: bool) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise RowError(name, "expected a non-empty list of turns", "wrong type" if value is not None else "missing field")
    messages = []
    for index, turn in enumerate(value):
        where = f"{name}[{index}]"
        if not isinstance(turn, dict):
            raise RowError(where, f"expected an object, got {type(turn).__name__}", "wrong type")
        raw_role = turn.get(role_key)
        role = SHAREGPT_ROLES.get(str(raw_role).lower()) if sharegpt else raw_role
        if role not in ROLES:
            raise RowError(f"{where}.{role_key}", f"unknown role {raw_role!r}", "unknown role")
        content = turn.get(content_key)
        calls = None
        if sharegpt and str(raw_role).lower() in ("function_call", "tool_call"):  # the value is the call's JSON
            calls = tool_calls(content, f"{where}.{content_key}")
            content = ""
        elif not sharegpt and turn.get("tool_calls"):
            if role != "assistant":
                raise RowError(f"{where}.tool_calls", f"only an assistant turn can call tools, this one is '{role}'", "turn order")
            calls = tool_calls(turn["tool_calls"], f"{where}.tool_calls")
            content = "" if content is None else content  # OpenAI: content is null on a pure tool call
        if content is None:
            raise RowError(f"{where}.{content_key}", "missing field", "missing field")
        if not isinstance(content, str):
            raise RowError(f"{where}.{content_key}", f"expected text, got {type(content).__name__}", "wrong type")
        message = {"role": role, "content": content}
        if calls:
            message["tool_calls"] = calls
        messages.append(message)
    return messages


def _json_value(value, where: str, what: str, kind: str):
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as err:
            raise RowError(where, f"{what} is not valid JSON ({err.msg} at character {err.pos})", kind) from None
    return value


def tool_calls(value, where: str) -> list[dict]:
    """One call or a list of calls, each {"name", "arguments"} or OpenAI's {"type", "function": {...}}."""
    value = _json_value(value, where, "the tool call", "invalid tool call")
    calls = value if isinstance(value, list) else [value]
    if not calls:
        raise RowError(where, "an empty list of tool calls", "invalid tool call")
    out = []
    for index, call in enumerate(calls):
        spot = where if len(calls) == 1 else f"{where}[{index}]"
        function = call.get("function") if isinstance(call, dict) and isinstance(call.get("function"), dict) else call
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"].strip():
            raise RowError(spot, 'a tool call needs a "name" (and "arguments")', "invalid tool call")
        arguments = function.get("arguments", function.get("parameters", {}))
        arguments = _json_value(arguments, spot + ".arguments", "the call's arguments", "invalid tool call")
        item = {"type": "function", "function": {"name": function["name"], "arguments": arguments if arguments is not None else {}}}
        if isinstance(call, dict) and call.get("id"):
            item["id"] = str(call["id"])
        out.append(item)
    return out


def parse_tools(value, where: str = "tools") -> list[dict]:
    """The `tools` column: a list of function schemas (bare, or OpenAI's {"type": "function", "function": ...}),
    or that list as a JSON string. Empty -> []."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    value = _json_value(value, where, "the tools value", "invalid tools")
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RowError(where, f"expected a list of function schemas, got {type(value).__name__}", "invalid tools")
    tools = []
    for index, tool in enumerate(value):
        function = tool.get("function") if isinstance(tool, dict) and isinstance(tool.get("function"), dict) else tool
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"].strip():
            raise RowError(f"{where}[{index}]", 'a tool schema needs a "name"', "invalid tools")
        tools.append({"type": "function", "function": function})
    return tools


def boolean_label(value, where: str) -> bool:
    """A KTO label: true/false, 1/0, yes/no (any case, also as text). Anything else is a row problem."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise RowError(where, f"expected a boolean-like label (true/false, 1/0, yes/no; true = desirable), got {value!r}", "wrong type")


def check_turn_order(messages: list[dict], name: str, *, needs_reply: bool = True) -> None:
    """System turns first; then user, assistant alternating (tool results follow an assistant call)."""
    seen_other = False
    for index, message in enumerate(messages):
        if message["role"] == "system":
            if seen_other:
                raise RowError(f"{name}[{index}]", "a system turn after the conversation started", "turn order")
            continue
        seen_other = True
    body = [m for m in messages if m["role"] != "system"]
    if not body or body[0]["role"] != "user":
        raise RowError(name, "the first non-system turn must be from the user", "turn order")
    offset = len(messages) - len(body)
    for index, (before, after) in enumerate(zip(body, body[1:]), start=offset + 1):
        pair = (before["role"], after["role"])
        if pair in (("user", "assistant"), ("assistant", "user"), ("assistant", "tool"), ("tool", "assistant"), ("tool", "tool")):
            continue
        raise RowError(f"{name}[{index}]", f"'{after['role']}' after '{before['role']}' (turns must alternate user/assistant)", "turn order")
    if needs_reply:
        if body[-1]["role"] != "assistant":
            raise RowError(name, "the last turn must be an assistant reply", "turn order")
        if not body[-1]["content"].strip() and not body[-1].get("tool_calls"):
            raise RowError(f"{name}[{len(messages) - 1}].content", "empty response", "empty response")
    elif body[-1]["role"] != "user":
        raise RowError(name, "a prompt must end with a user turn", "turn order")


def _prompt(row: dict, name: str = "prompt", *, required: bool = True) -> list[dict]:
    value = row.get(name)
    if value is None:
        if required:
            raise RowError(name, "missing field", "missing field")
        return []
    if isinstance(value, str):
        if not value.strip():
            raise RowError(name, "empty text", "empty field")
        return [{"role": "user", "content": value}]
    messages = _turns(value, name, "role", "content", sharegpt=False)
    check_turn_order(messages, name, needs_reply=False)
    return messages


def _reply(row: dict, name: str) -> list[dict]:
    """A completion: text, one message, or a list of assistant messages."""
    value = row.get(name)
    if value is None:
        raise RowError(name, "missing field", "missing field")
    if isinstance(value, str):
        if not value.strip():
            raise RowError(name, "empty response", "empty response")
        return [{"role": "assistant", "content": value}]
    if isinstance(value, dict):
        value = [value]
    sharegpt = isinstance(value, list) and value and isinstance(value[0], dict) and "from" in value[0]
    messages = _turns(value, name, "from" if sharegpt else "role", "value" if sharegpt else "content", sharegpt=sharegpt)
    if messages[-1]["role"] != "assistant":
        raise RowError(name, "must end with an assistant reply", "turn order")
    if not messages[-1]["content"].strip() and not messages[-1].get("tool_calls"):
        raise RowError(name, "empty response", "empty response")
    return messages


def convert(row: dict, fmt: str) -> dict:
    """One raw row -> one internal example. Raises RowError naming the field on a bad row."""
    if not isinstance(row, dict):
        raise RowError("(row)", f"expected an object, got {type(row).__name__}", "wrong type")
    example = _convert(row, fmt)
    if "tools" in USED_COLUMNS.get(fmt, ()) and present(row, "tools"):
        tools = parse_tools(row["tools"])
        if tools:
            example["tools"] = tools
    return example


def _conversation(row: dict) -> list[dict]:
    """The conversation of a messages or sharegpt row (with the sharegpt `system` column folded in)."""
    if present(row, "messages"):
        messages = _turns(row.get("messages"), "messages", "role", "content", sharegpt=False)
        check_turn_order(messages, "messages")
        return messages
    messages = _turns(row.get("conversations"), "conversations", "from", "value", sharegpt=True)
    if isinstance(row.get("system"), str) and row["system"].strip() and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": row["system"]})
    check_turn_order(messages, "conversations")
    return messages


def _convert(row: dict, fmt: str) -> dict:
    if fmt == "alpaca":
        instruction = _text(row, "instruction")
        extra = _text(row, "input", required=False)
        output = _text(row, "output", response=True)
        system = _text(row, "system", required=False)
        messages = [{"role": "system", "content": system}] if system.strip() else []
        history = row.get("history") or []
        if not isinstance(history, list):
            raise RowError("history", "expected a list of [instruction, response] pairs", "wrong type")
        for index, pair in enumerate(history):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(t, str) for t in pair)):
                raise RowError(f"history[{index}]", "expected a pair of texts [instruction, response]", "wrong type")
            messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
        user = instruction if not extra.strip() else f"{instruction}\n\n{extra}"
        return {"messages": messages + [{"role": "user", "content": user}, {"role": "assistant", "content": output}]}
    if fmt == "prompt_completion":
        prompt = _prompt(row)
        return {"messages": prompt + _reply(row, "completion")}
    if fmt == "messages":
        if not present(row, "messages"):
            raise RowError("messages", "missing field", "missing field")
        return {"messages": _conversation(row)}
    if fmt == "sharegpt":
        if not present(row, "conversations"):
            raise RowError("conversations", "missing field", "missing field")
        return {"messages": _conversation(row)}
    if fmt == "preference":
        if present(row, "conversations"):  # sharegpt-style: conversations + chosen/rejected turn objects
            prompt = _turns(row["conversations"], "conversations", "from", "value", sharegpt=True)
            check_turn_order(prompt, "conversations", needs_reply=False)
        else:
            prompt = _prompt(row, required=False)
        chosen, rejected = _reply(row, "chosen"), _reply(row, "rejected")
        if not prompt:  # implicit prompt: the shared leading turns of chosen and rejected
            shared = 0
            while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
                shared += 1
            prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
            if not prompt:
                raise RowError("prompt", "missing field (and chosen/rejected share no leading prompt turns)", "missing field")
        if chosen == rejected:
            raise RowError("rejected", "identical to chosen; the pair teaches nothing", "chosen = rejected")
        return {"messages": prompt + chosen, "prompt": prompt, "chosen": chosen, "rejected": rejected}
    if fmt == "kto":
        key = next((k for k in KTO_LABELS if present(row, k)), None)
        if key is None:
            raise RowError("label", "missing field (KTO rows need a boolean-like `label` or `kto_tag`)", "missing field")
        label = boolean_label(row[key], key)
        if present(row, "messages") or present(row, "conversations"):
            messages = _conversation(row)
            cut = max(i for i, m in enumerate(messages) if m["role"] in ("user", "tool")) + 1
            prompt, completion = messages[:cut], messages[cut:]
        else:
            prompt, completion = _prompt(row), _reply(row, "completion")
        return {"messages": prompt + completion, "prompt": prompt, "completion": completion, "label": label}
    if fmt == "prompt_only":
        prompt = _prompt(row)
        return {"messages": prompt, "prompt": prompt}
    if fmt == "text":
        text = _text(row, "text")
        return {"messages": [{"role": "assistant", "content": text}], "text": text}
    raise RowError("(format)", f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}", "unknown format")


def prompt_and_reply(example: dict) -> tuple[list[dict], list[dict]]:
    """Split an internal example into (prompt messages, trained reply messages)."""
    if "text" in example:
        return [], example["messages"]
    if "prompt" in example and "chosen" not in example and "completion" not in example:
        return example["prompt"], []
    messages = example["messages"]
    last_user = max((i for i, m in enumerate(messages) if m["role"] in ("user", "tool")), default=-1)
    return messages[: last_user + 1], messages[last_user + 1 :]


def to_messages(row: dict, fmt: str) -> list[dict]:
    """Backwards-compatible: one row's conversation; raises ValueError('field: message')."""
    return convert(row, fmt)["messages"]


# ---------------------------------------------------------------- placeholders (rule: module docstring)

_PLACEHOLDER = re.compile(
    r"\{\{\s*(?P<double>[A-Za-z_][A-Za-z0-9_]*)\s*\}\}"
    r"|(?<![\w\\$^{}])\{(?P<single>[A-Za-z_][A-Za-z0-9_]*)\}(?!\})"
    r"|<(?P<angle>[A-Z][A-Z0-9_]+)>"
)
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]+`", re.S)
_NOT_PLACEHOLDERS = {
    "BR", "HR", "DIV", "SPAN", "EM", "LI", "UL", "OL", "TD", "TR", "TH", "TABLE", "HTML", "BODY", "HEAD", "IMG", "PRE",
    "CODE", "SUB", "SUP", "H1", "H2", "H3", "H4", "H5", "H6", "EOS", "BOS", "PAD", "UNK", "SEP", "CLS", "MASK", "S",
}


def _placeholder_matches(text: str):
    """(match, shown form, name) for each placeholder outside code, in order."""
    code = [m.span() for m in _CODE.finditer(text)] if "`" in text else []
    for match in _PLACEHOLDER.finditer(text):
        if any(start <= match.start() < end for start, end in code):
            continue
        if match["double"]:
            yield match, "{{" + match["double"] + "}}", match["double"]
        elif match["single"]:
            yield match, "{" + match["single"] + "}", match["single"]
        elif match["angle"] not in _NOT_PLACEHOLDERS:
            yield match, "<" + match["angle"] + ">", match["angle"]


def find_placeholders(text: str) -> list[str]:
    """Unresolved placeholders in one text, as written in canonical form ("{{name}}", "{name}", "<NAME>")."""
    if not isinstance(text, str) or not any(c in text for c in "{<"):
        return []
    return [shown for _, shown, _ in _placeholder_matches(text)]


def row_placeholders(row, fmt: str) -> dict[str, Counter]:
    """field path -> Counter of placeholders, over the text of the columns the format reads (not `tools`)."""
    found: dict[str, Counter] = {}

    def walk(value, path: str) -> None:
        if isinstance(value, str):
            hits = find_placeholders(value)
            if hits:
                found[path] = Counter(hits)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}")

    if isinstance(row, dict):
        for column in USED_COLUMNS.get(fmt, ()):
            if column != "tools" and present(row, column):
                walk(row[column], column)
    return found


def placeholder_name(key: str) -> str:
    """'{{name}}', '{name}', '<NAME>' or 'name' -> 'name' (the key of a fill mapping)."""
    return str(key).strip().strip("{}<>").strip()


def fill_placeholders(value, mapping: dict[str, str]):
    """Replace the placeholders named in `mapping` (by the same rule as `find_placeholders`) in every
    text of a row or example (str, list, dict); others stay as they are."""
    names = {placeholder_name(k): str(v) for k, v in (mapping or {}).items() if placeholder_name(k)}
    if not names:
        return value
    if isinstance(value, str):
        if not any(c in value for c in "{<"):
            return value
        out, last = [], 0
        for match, _, name in _placeholder_matches(value):
            if name in names:
                out += [value[last:match.start()], names[name]]
                last = match.end()
        return "".join(out) + value[last:] if out else value
    if isinstance(value, list):
        return [fill_placeholders(item, names) for item in value]
    if isinstance(value, dict):
        return {key: fill_placeholders(item, names) for key, item in value.items()}
    return value


def portable(row: dict) -> dict:
    """A stored row (saved version): `tools` and tool-call arguments as JSON strings, as OpenAI writes
    them, so Parquet does not merge every schema's keys into one struct; the loader parses them back."""
    def calls(messages):
        if not isinstance(messages, list):
            return messages
        out = []
        for m in messages:
            if isinstance(m, dict) and m.get("tool_calls"):
                m = {**m, "tool_calls": [{**c, "function": {**c["function"], "arguments": json.dumps(c["function"]["arguments"], ensure_ascii=False)}} for c in m["tool_calls"]]}
            out.append(m)
        return out

    row = {key: calls(value) for key, value in row.items()}
    if "tools" in row:
        row["tools"] = json.dumps(row["tools"], ensure_ascii=False)
    return row
