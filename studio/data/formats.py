"""Dataset formats: detect one row's schema and convert it to the internal conversational form.

Internal form (one dict per example; every example has `messages`, the conversation to learn):
- alpaca, sharegpt, messages, prompt_completion: {"messages": [...]}
- preference: {"messages": prompt + chosen, "prompt": [...], "chosen": [assistant], "rejected": [assistant]}
- kto:        {"messages": prompt + completion, "prompt": [...], "completion": [assistant], "label": bool}
- prompt_only: {"messages": prompt, "prompt": [...]}
- text:       {"messages": [{"role": "assistant", "content": doc}], "text": doc}
A message is {"role": "system"|"user"|"assistant"|"tool", "content": str}.
"""

from __future__ import annotations

import json

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
    if has("completion") and has("label"):
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
        if content is None and not sharegpt and turn.get("tool_calls"):
            content = json.dumps(turn["tool_calls"], ensure_ascii=False)  # an assistant tool call with no text
        if content is None:
            raise RowError(f"{where}.{content_key}", "missing field", "missing field")
        if not isinstance(content, str):
            raise RowError(f"{where}.{content_key}", f"expected text, got {type(content).__name__}", "wrong type")
        messages.append({"role": role, "content": content})
    return messages


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
        if not body[-1]["content"].strip():
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
    if not messages[-1]["content"].strip():
        raise RowError(name, "empty response", "empty response")
    return messages


def convert(row: dict, fmt: str) -> dict:
    """One raw row -> one internal example. Raises RowError naming the field on a bad row."""
    if not isinstance(row, dict):
        raise RowError("(row)", f"expected an object, got {type(row).__name__}", "wrong type")
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
        messages = _turns(row.get("messages"), "messages", "role", "content", sharegpt=False)
        check_turn_order(messages, "messages")
        return {"messages": messages}
    if fmt == "sharegpt":
        messages = _turns(row.get("conversations"), "conversations", "from", "value", sharegpt=True)
        if isinstance(row.get("system"), str) and row["system"].strip() and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": row["system"]})
        check_turn_order(messages, "conversations")
        return {"messages": messages}
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
        prompt = _prompt(row)
        completion = _reply(row, "completion")
        label = row.get("label")
        if not isinstance(label, bool):
            if label in (0, 1) or str(label).lower() in ("true", "false"):  # CSV cells and 0/1 ints
                label = str(label).lower() in ("1", "true")
            else:
                raise RowError("label", f"expected true or false, got {label!r}", "wrong type")
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
