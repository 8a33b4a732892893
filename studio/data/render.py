"""What is trained: one example through the model's chat template, token by token, with the tokens
that carry loss and the tokens cut by max_length. ONE implementation, used by the Data tab's
"Tokens with loss" view, `data render`, `data inspect` (cut-off answers) and SFT training
(`studio.methods.sft` trains on `Rendered.labels()`), so what is shown is what is trained.

Loss modes (RunConfig `loss_on`, plus "all" for full SFT):
- all_assistant: every assistant turn, tool calls included (the default);
- last_reply:    the last assistant reply only (the turns after the last user or tool message);
- all:           every token (full SFT; raw text for continued pre-training).
A turn's trained span is found by rendering the conversation up to it: the text between the
prompt rendered with the generation prompt and the conversation rendered through that turn, so the
span holds the reply, any tool call the template writes, and the end-of-turn token (the model
learns to stop). Templates that rewrite earlier turns (Qwen3) or close the conversation with an extra
EOS (Phi-3) fall back to locating the reply's text and the end-of-turn token after it.

Tools. The `tools` schemas go to `tokenizer.apply_chat_template(..., tools=...)` and tool calls as
structured `tool_calls`, where the template uses them (checked by rendering a probe, not guessed).
Where it does not (SmolLM2's template ignores both), the studio's documented fallback, in the
Hermes/Qwen convention many tool-calling models are trained on:
- the tools go into a system block (appended to the conversation's system message, or as one):
  "# Tools" + the schemas as JSON lines inside <tools></tools> + how to call them;
- an assistant tool call is written in its content as <tool_call>{"name": ..., "arguments": ...}</tool_call>;
- where the template cannot render role "tool", a tool result becomes a user turn
  <tool_response>...</tool_response>.
`Rendered.tools_fallback` says when this happened; `data inspect` warns about it.

Truncation: `max_length` keeps the first tokens (truncation_side "right") or the last ones ("left":
the prompt is cut from the start instead). A row whose trained tokens all lie past the cut is
"answer cut off" (training drops it); one that loses some of them is cut partly.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass, field

from ..config import RunConfig
from .formats import prompt_and_reply

# The choices of RunConfig's loss_on / truncation_side (one list, in config.py), plus full SFT's "all".
LOSS_ON = {**RunConfig.field_choices("loss_on"), "all": "every token (full SFT)"}
MODES = LOSS_ON  # the Data tab's choices
TRUNCATION_SIDES = tuple(RunConfig.field_choices("truncation_side"))
TOOLS_HEADER = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
)
TOOLS_FOOTER = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)
_PROBE_TOOL = "studio_probe_tool_7f3a"
_PROBE_CALL = "studio_probe_call_9c1e"
_PROBE_RESULT = "studio_probe_result_4b2d"


@dataclass
class Token:
    text: str
    trained: bool
    cut: bool  # beyond max_length: never seen by the model


@dataclass
class Support:
    tools: bool  # the template renders the `tools` argument
    tool_calls: bool  # ... an assistant message's `tool_calls`
    tool_role: bool  # ... a message of role "tool"


_SUPPORT: dict[str, Support] = {}


def _apply(tokenizer, messages, tools=None, **kwargs) -> str:
    return tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, **kwargs)


def template_support(tokenizer) -> Support:
    """What the chat template does with tools, found by rendering probes (cached per template)."""
    key = str(getattr(tokenizer, "chat_template", None))
    if key in _SUPPORT:
        return _SUPPORT[key]
    user = {"role": "user", "content": "hi"}
    call = {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": _PROBE_CALL, "arguments": {"x": 1}}}]}
    schema = {"type": "function", "function": {"name": _PROBE_TOOL, "description": "probe", "parameters": {"type": "object", "properties": {}}}}

    def renders(probe: str, messages, tools=None) -> bool:
        try:
            return probe in _apply(tokenizer, messages, tools)
        except Exception:  # noqa: BLE001 - a template that raises on the probe does not support it
            return False

    support = Support(
        tools=renders(_PROBE_TOOL, [user], [schema]),
        tool_calls=renders(_PROBE_CALL, [user, call]),
        tool_role=renders(_PROBE_RESULT, [user, call, {"role": "tool", "content": _PROBE_RESULT}]),
    )
    _SUPPORT[key] = support
    return support


def tools_block(tools: list[dict]) -> str:
    """The fallback system block listing the tool schemas (see the module docstring)."""
    return TOOLS_HEADER + "\n".join(json.dumps(t, ensure_ascii=False) for t in tools) + TOOLS_FOOTER


def _call_text(calls: list[dict]) -> str:
    return "\n".join(
        "<tool_call>\n" + json.dumps({"name": c["function"]["name"], "arguments": c["function"]["arguments"]}, ensure_ascii=False) + "\n</tool_call>"
        for c in calls
    )


def template_messages(example: dict, tokenizer) -> tuple[list[dict], list[dict] | None, bool]:
    """(messages, tools argument, fallback used) as the chat template will see this example."""
    support = template_support(tokenizer)
    tools = example.get("tools") or None
    messages, fallback = [], False
    for message in example["messages"]:
        message = dict(message)
        if message.get("tool_calls") and not support.tool_calls:
            text = _call_text(message.pop("tool_calls"))
            message["content"] = f"{message['content']}\n{text}" if message["content"].strip() else text
            fallback = True
        if message["role"] == "tool" and not support.tool_role:
            text = f"<tool_response>\n{message['content']}\n</tool_response>"
            fallback = True
            if messages and messages[-1]["role"] == "user" and messages[-1].get("_tool"):
                messages[-1]["content"] += "\n" + text  # consecutive results: one user turn
                continue
            message = {"role": "user", "content": text, "_tool": True}
        messages.append(message)
    messages = [{k: v for k, v in m.items() if k != "_tool"} for m in messages]
    if tools and not support.tools:
        block = tools_block(tools)
        if messages and messages[0]["role"] == "system":
            messages[0] = {**messages[0], "content": messages[0]["content"].rstrip() + "\n\n" + block}
        else:
            messages.insert(0, {"role": "system", "content": block})
        tools, fallback = None, True
    return messages, tools, fallback


def texts(example: dict, tokenizer) -> tuple[str, str]:
    """(prompt text with the generation prompt, full text) of an example, tools included."""
    if "text" in example:
        return "", example["text"] + (tokenizer.eos_token or "")
    messages, tools, _ = template_messages(example, tokenizer)
    prompt, reply = prompt_and_reply({**example, "messages": messages})
    prompt_text = _apply(tokenizer, prompt, tools, add_generation_prompt=True) if prompt else ""
    return prompt_text, (_apply(tokenizer, prompt + reply, tools) if reply else prompt_text)


def _closing(tokenizer, through: str, content: str, rest: str) -> str:
    """The end-of-turn text (<|im_end|>) the template writes after a reply, as the turn rendered last
    shows it, in whole tokens as far as the conversation's text after the reply (`rest`) agrees
    (Phi-3 ends the conversation with an extra EOS), without trailing whitespace: a reply found by its
    text still trains the token that ends it, so the model learns to stop after every reply."""
    if content not in through:
        return ""
    closing = through[through.rfind(content) + len(content):]
    agree = len(os.path.commonprefix([closing, rest]))
    kept = 0
    for start, end in tokenizer(closing, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]:
        if end > agree:
            break
        kept = end
    return closing[:kept].rstrip()


def _spans(messages: list[dict], tools, tokenizer, full: str, first: int) -> list[tuple[int, int]]:
    """Character spans of the assistant turns from message `first` on (see the module docstring)."""
    spans, cursor = [], 0
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = _apply(tokenizer, messages[:index], tools, add_generation_prompt=True)
        through = _apply(tokenizer, messages[: index + 1], tools)
        if full.startswith(through) and through.startswith(before) and len(through) > len(before):
            end = len(through)
            while end > len(before) and through[end - 1].isspace():  # the newline after the end-of-turn token
                end -= 1
            span = (len(before), end)
        else:  # a template that rewrites earlier turns (Qwen3 drops the think block): find the reply's own text
            content = message["content"]
            start = full.find(content, cursor) if content else -1
            span = None
            if start >= 0:
                end = start + len(content)
                span = (start, end + len(_closing(tokenizer, through, content, full[end:])))
        if span:
            cursor = span[1]
            if index >= first:
                spans.append(span)
    return spans


@dataclass
class Rendered:
    text: str
    input_ids: list[int]
    offsets: list[tuple[int, int]]
    trained: list[bool]  # per token, before the cut
    keep: range  # the positions max_length keeps
    tools_included: bool  # the tools schemas are in the text (through the template or the fallback)
    tools_fallback: bool  # the studio's fallback rendered tools or calls (the template has no tool support)
    token_texts: list[str] = field(default_factory=list)

    @property
    def trained_total(self) -> int:
        return sum(self.trained)

    @property
    def trained_kept(self) -> int:
        return sum(self.trained[i] for i in self.keep)

    @property
    def cut(self) -> str:
        """'none', 'partial' (some trained tokens lie past the cut) or 'entire' (all of them do)."""
        if self.trained_total and not self.trained_kept:
            return "entire"
        return "partial" if self.trained_kept < self.trained_total else "none"

    def labels(self) -> tuple[list[int], list[int]]:
        """(input_ids, labels) of the kept tokens; untrained positions are -100 (for SFTTrainer)."""
        ids = [self.input_ids[i] for i in self.keep]
        return ids, [self.input_ids[i] if self.trained[i] else -100 for i in self.keep]

    def tokens(self) -> list[Token]:
        kept = set(self.keep)
        return [Token(text, trained, i not in kept) for i, (text, trained) in enumerate(zip(self.token_texts, self.trained))]

    def trained_runs(self) -> list[list[int]]:
        """The runs of consecutive trained token ids (one per trained assistant turn), before the cut."""
        runs: list[list[int]] = []
        last = None  # the position of the previous trained token
        for i, trained in enumerate(self.trained):
            if not trained:
                continue
            if last == i - 1:
                runs[-1].append(self.input_ids[i])
            else:
                runs.append([self.input_ids[i]])
            last = i
        return runs

    @property
    def trained_text(self) -> str:
        return "".join(self.token_texts[i] for i in self.keep if self.trained[i])


def render(example: dict, tokenizer, *, loss_on: str = "all_assistant", max_length: int | None = None, truncation_side: str = "right") -> Rendered:
    """Render one example and mark what trains (see the module docstring)."""
    if loss_on not in LOSS_ON:
        raise ValueError(f"loss_on must be one of {', '.join(LOSS_ON)}, got {loss_on!r}")
    if truncation_side not in TRUNCATION_SIDES:
        raise ValueError(f"truncation_side must be one of {', '.join(TRUNCATION_SIDES)}, got {truncation_side!r}")
    tools_included = fallback = False
    if "text" in example:
        full = example["text"] + (tokenizer.eos_token or "")
        spans = [(0, len(full))]
    else:
        messages, tools, fallback = template_messages(example, tokenizer)
        full = _apply(tokenizer, messages, tools)
        tools_included = bool(example.get("tools")) and all(t["function"]["name"] in full for t in example["tools"])
        if loss_on == "all":
            spans = [(0, len(full))]
        else:
            first = len(prompt_and_reply({**example, "messages": messages})[0]) if loss_on == "last_reply" else 0
            spans = _spans(messages, tools, tokenizer, full, first)
    encoding = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoding["input_ids"], [tuple(o) for o in encoding["offset_mapping"]]
    trained = [any(s <= start < e for s, e in spans) for start, _ in offsets]
    texts_ = [full[s:e] or tokenizer.decode([i]) for i, (s, e) in zip(ids, offsets)]
    n = len(ids)
    if max_length and n > max_length:
        keep = range(0, max_length) if truncation_side == "right" else range(n - max_length, n)
    else:
        keep = range(0, n)
    return Rendered(full, ids, offsets, trained, keep, tools_included, fallback, texts_)


def loss_settings(cfg) -> dict:
    """`render`'s keyword arguments for a run's RunConfig: what its SFT trains (full SFT: every token).
    SFT's labels and the eval loss (studio.evaluate) both take them from here."""
    return {"loss_on": "all" if cfg.method == "full" else cfg.loss_on, "max_length": cfg.max_length, "truncation_side": cfg.truncation_side}


def trained_tokens(example: dict, tokenizer, *, mode: str = "all_assistant", max_length: int | None = None, truncation_side: str = "right") -> list[Token]:
    """Per-token view of `render` (the Data tab)."""
    return render(example, tokenizer, loss_on=mode, max_length=max_length, truncation_side=truncation_side).tokens()


def describe(rendered: Rendered) -> dict:
    """The `data render --json` object."""
    return {
        "text": rendered.text,
        "trained_text": rendered.trained_text,
        "tools_included": rendered.tools_included,
        "tools_fallback": rendered.tools_fallback,
        "tokens": len(rendered.input_ids),
        "trained_tokens": rendered.trained_kept,
        "cut": rendered.cut,
    }


def tokens_html(tokens: list[Token], notes: list[str] | None = None) -> str:
    """Trained tokens highlighted, the rest grey; a legend, counts and notes on top."""
    trained = sum(t.trained and not t.cut for t in tokens)
    cut = sum(t.cut for t in tokens)
    cut_trained = sum(t.cut and t.trained for t in tokens)
    parts = [
        '<div class="studio-tokens">',
        f'<div class="studio-tokens-legend"><span class="tok-trained">trained</span> {trained} of {len(tokens)} tokens carry loss'
        + (f' · <span class="tok-cut">cut</span> {cut} beyond max_length' + (f" ({cut_trained} of them would have trained)" if cut_trained else "") if cut else "")
        + ' · <span class="tok-context">context</span> seen, not trained</div>',
    ]
    for note in notes or []:
        parts.append(f'<div class="studio-tokens-note">⚠️ {html.escape(note)}</div>')
    parts.append('<pre class="studio-tokens-body">')
    style = {
        "tok-trained": "background:#c8f7d4;color:#0b4d1e;border-radius:2px;",
        "tok-context": "color:#9a9a9a;",
        "tok-cut": "color:#c0392b;text-decoration:line-through;",
    }
    for token in tokens:
        kind = "tok-cut" if token.cut else "tok-trained" if token.trained else "tok-context"
        text = html.escape(token.text).replace("\n", "↵\n")
        parts.append(f'<span class="{kind}" style="{style[kind]}">{text}</span>')
    parts.append("</pre></div>")
    return "".join(parts)


def notes(rendered: Rendered, max_length: int | None) -> list[str]:
    """What the view should say besides the tokens: the tools fallback and a cut answer."""
    out = []
    if rendered.tools_fallback:
        out.append("This model's chat template has no tool support: the studio wrote the tools schema as a system block and the calls as <tool_call> JSON (documented in studio/data/render.py).")
    if rendered.cut == "entire":
        out.append(f"The whole trained part lies past max_length {max_length}: training drops this row (raise max_length, or set truncation_side: left).")
    elif rendered.cut == "partial":
        out.append(f"Part of the trained answer lies past max_length {max_length} and is cut.")
    return out


__all__ = ["LOSS_ON", "MODES", "Rendered", "Support", "Token", "describe", "loss_settings", "notes", "prompt_and_reply", "render", "template_messages", "template_support", "texts", "tokens_html", "tools_block", "trained_tokens"]
