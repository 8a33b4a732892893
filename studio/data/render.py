"""See what is trained: one example through the model's chat template, token by token, with the
tokens that carry loss marked (the rest greyed out) and the tokens cut by max_length struck out.

Modes match the trainers: "completion" = the last assistant reply (LoRA/QLoRA/instruction: TRL's
completion-only loss), "assistant" = every assistant turn, "all" = every token (full SFT).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from .formats import prompt_and_reply

MODES = {"completion": "last assistant reply (LoRA, QLoRA, instruction)", "assistant": "every assistant turn", "all": "every token (full SFT)"}


@dataclass
class Token:
    text: str
    trained: bool
    cut: bool  # beyond max_length: never seen by the model


def trained_tokens(example: dict, tokenizer, *, mode: str = "completion", max_length: int | None = None) -> list[Token]:
    if "text" in example:
        full = example["text"] + (tokenizer.eos_token or "")
        spans = [(0, len(full))]
    else:
        messages = example["messages"]
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        prompt, reply = prompt_and_reply(example)
        # Locate each message's content in the rendered text, in order (templates only add markup).
        spans, cursor, positions = [], 0, []
        for message in messages:
            start = full.find(message["content"], cursor) if message["content"] else -1
            positions.append((start, start + len(message["content"])) if start >= 0 else None)
            if start >= 0:
                cursor = start + len(message["content"])
        if mode == "all":
            spans = [(0, len(full))]
        else:
            trained_from = len(prompt) if mode == "completion" else 0
            for index, message in enumerate(messages):
                if message["role"] == "assistant" and index >= trained_from and positions[index]:
                    spans.append(positions[index])
    encoding = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    special = set(tokenizer.all_special_tokens) | {t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values()}
    tokens: list[Token] = []
    previous_trained = False
    for position, (token_id, (start, end)) in enumerate(zip(encoding["input_ids"], encoding["offset_mapping"])):
        text = full[start:end] or tokenizer.decode([token_id])
        inside = any(s <= start < e for s, e in spans)
        # The end-of-turn token right after a reply is trained too (the model learns to stop).
        trained = inside or (previous_trained and text in special)
        tokens.append(Token(text, trained, bool(max_length) and position >= max_length))
        previous_trained = inside
    return tokens


def tokens_html(tokens: list[Token]) -> str:
    """Trained tokens highlighted, the rest grey; a legend and counts on top."""
    trained = sum(t.trained and not t.cut for t in tokens)
    cut = sum(t.cut for t in tokens)
    parts = [
        '<div class="studio-tokens">',
        f'<div class="studio-tokens-legend"><span class="tok-trained">trained</span> {trained} of {len(tokens)} tokens carry loss'
        + (f' · <span class="tok-cut">cut</span> {cut} beyond max_length' if cut else "")
        + ' · <span class="tok-context">context</span> seen, not trained</div><pre class="studio-tokens-body">',
    ]
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


__all__ = ["MODES", "Token", "prompt_and_reply", "tokens_html", "trained_tokens"]
