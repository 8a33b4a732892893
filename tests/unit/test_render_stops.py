"""Does SFT teach the model to END its answers? The trained span of every assistant turn must hold the
end-of-turn token the chat template closes it with (<|im_end|>, <|eot_id|>, <end_of_turn>, <|end|>),
or the model never learns to stop. Checked on the demo data, against the masks TRL's own SFT
(`assistant_only_loss`, the `{% generation %}` training templates shipped in TRL) trains, and on a
template that rewrites earlier turns (Qwen3's), where render falls back to finding the reply's text."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import trl

from studio.data.loader import load_dataset_file
from studio.data.profile import tokenizer_for
from studio.data.render import render

REPO = Path(__file__).resolve().parents[2]
TRL_TEMPLATES = Path(trl.__file__).parent / "chat_templates"
CONVERSATION = {"messages": [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy?"},
    {"role": "assistant", "content": "Rome."},
]}
# TRL training template -> the token that ends an assistant turn in it (Phi-3's also closes the conversation
# with EOS, so render takes its fallback there)
TRL_TRAINING = {"qwen2_5_training": "<|im_end|>", "llama3_training": "<|eot_id|>", "phi3_training": "<|end|>", "gemma_training": "<end_of_turn>"}


@pytest.fixture(scope="module")
def embedded():
    return tokenizer_for("embedded")


def with_template(tokenizer, template: str, specials=()):
    """The embedded (fast, offline) tokenizer with another family's chat template and its special tokens."""
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.add_tokens(list(specials), special_tokens=True)
    tokenizer.chat_template = template
    return tokenizer


def trained_runs(rendered, tokenizer) -> list[list[str]]:
    """The runs of consecutive trained tokens (one per assistant turn), as tokens."""
    return [tokenizer.convert_ids_to_tokens(run) for run in rendered.trained_runs()]


def turn_ends(rendered, tokenizer) -> list[str]:
    return [run[-1] for run in trained_runs(rendered, tokenizer)]


@pytest.mark.parametrize("loss_on", ["all_assistant", "last_reply"])
def test_every_demo_row_trains_its_im_end(embedded, loss_on):
    loaded = load_dataset_file(REPO / "assets" / "demo" / "json_answers.jsonl")
    im_end = embedded.convert_tokens_to_ids("<|im_end|>")
    assert embedded.eos_token_id == im_end == 2  # SmolLM2-Instruct stops on <|im_end|>, not <|endoftext|>
    for example in loaded.conversations:
        ids, labels = render(example, embedded, loss_on=loss_on, max_length=256).labels()
        trained = [label for label in labels if label != -100]
        assert trained[-1] == im_end and labels[-1] == -100 and embedded.decode(ids[-1:]) == "\n", example  # <|im_end|> trains; the newline after it (never generated) does not


@pytest.mark.parametrize("name", sorted(TRL_TRAINING))
def test_the_trained_span_is_what_trls_assistant_only_loss_trains(embedded, name):
    template = (TRL_TEMPLATES / f"{name}.jinja").read_text()
    end = TRL_TRAINING[name]
    tokenizer = with_template(embedded, template, ["<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|begin_of_text|>",
                                                   "<|end|>", "<|user|>", "<|assistant|>", "<|system|>", "<start_of_turn>", "<end_of_turn>"])
    conversation = CONVERSATION if name != "gemma_training" else {"messages": CONVERSATION["messages"][1:]}  # Gemma has no system role
    rendered = render(conversation, tokenizer)
    trl_rendered = tokenizer.apply_chat_template(conversation["messages"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    assert trl_rendered["input_ids"] == rendered.input_ids
    trl_mask = list(trl_rendered["assistant_masks"])
    # TRL also trains the whitespace its template writes after the end-of-turn token (and Qwen2.5's the
    # newline before the reply); the studio does not: generation stops at the token, and the newline
    # before the reply is part of the generation prompt, so neither is ever generated
    for i, trained in enumerate(rendered.trained):
        if trl_mask[i] and not trained:
            beside = rendered.trained[i - 1] or rendered.trained[i + 1]
            assert tokenizer.decode(rendered.input_ids[i : i + 1]).isspace() and beside, (name, i)
        else:
            assert trained == bool(trl_mask[i]), (name, i)
    runs = trained_runs(rendered, tokenizer)
    assert len(runs) == 2 and all(end in run for run in runs), runs  # (Phi-3 also trains the EOS closing the conversation)


def test_a_template_that_rewrites_earlier_turns_still_trains_each_turns_end(embedded):
    """Qwen3's template writes the (empty) think block only into the last reply, so rendering up to an
    earlier reply is no prefix of the whole conversation and render falls back to finding the reply's
    text: the <|im_end|> after it must train too (it did not: the model then never learned to stop
    after an earlier turn)."""
    tokenizer = with_template(embedded, (TRL_TEMPLATES / "qwen3.jinja").read_text(), ["<think>", "</think>"])
    rendered = render(CONVERSATION, tokenizer)
    assert "Paris.<|im_end|>" in rendered.text and "<think>\n\n</think>\n\nRome.<|im_end|>" in rendered.text
    assert turn_ends(rendered, tokenizer) == ["<|im_end|>", "<|im_end|>"]
    assert rendered.trained_text.startswith("Paris.<|im_end|>") and rendered.trained_text.endswith("Rome.<|im_end|>")
    last = render(CONVERSATION, tokenizer, loss_on="last_reply")
    assert turn_ends(last, tokenizer) == ["<|im_end|>"] and "Paris" not in last.trained_text
