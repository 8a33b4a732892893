"""The generation engine (studio.engine) on the embedded model: batched continuous decoding must give
exactly what transformers' own `generate` gives, whatever joins or leaves the batch."""

from __future__ import annotations

import queue
import threading

import pytest
import torch

from studio import engine, models
from studio.engine import GenerationSettings, Request, Side

pytestmark = pytest.mark.integration

GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=12)
QUESTIONS = [
    "What is the capital of France?",
    "Write one sentence about the sea, then explain in detail why tides happen twice a day on most coasts.",
    "2+2?",
    "Name three colours of the rainbow and say which one has the longest wavelength.",
]


def convo(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The embedded base with two small random adapters: plain LoRA ("lora") and DoRA ("dora")."""
    from peft import LoraConfig, get_peft_model

    folder = tmp_path_factory.mktemp("adapters")
    resolved = models.resolve(models.EMBEDDED)
    model = models.load_causal_lm(resolved)
    for name, dora in (("lora", False), ("dora", True)):
        torch.manual_seed(1)
        config = LoraConfig(r=4, lora_alpha=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False, use_dora=dora)
        peft_model = get_peft_model(model, config)
        peft_model.save_pretrained(str(folder / name))
        model = peft_model.unload()  # the plain model back, for the next adapter
    loaded = engine.LoadedBase(resolved)
    loaded.ensure_adapter("lora", folder / "lora")
    loaded.ensure_adapter("dora", folder / "dora")
    yield loaded
    loaded.close()


def run(requests: list[Request]) -> list[list[int]]:
    """Submit requests together (one prefill) and wait for all of them; their generated token ids."""
    updates: queue.Queue = queue.Queue()
    for request in requests:
        request.listener = updates
    requests[0].base.scheduler.submit(requests)
    while not all(r.done for r in requests):
        updates.get(timeout=60)
    assert all(r.error is None for r in requests), [r.error for r in requests]
    return [list(r.generated) for r in requests]


def hf_generate(side: Side, questions: list[str], max_new_tokens: int) -> list[list[int]]:
    """transformers' greedy generate on the same left-padded batch, cut at the first stop token."""
    tokenizer = side.base.tokenizer
    prompts = [side.base.prompt_ids(convo(q)) for q in questions]
    width = max(map(len, prompts))
    ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    stops = sorted(side.base.stop_ids)
    with torch.inference_mode(), side.active() as model:
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                             temperature=None, top_p=None, top_k=None, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)
    rows = []
    for row in out[:, width:].tolist():
        cut = next((i for i, t in enumerate(row) if t in stops), len(row))
        rows.append(row[:cut])
    return rows


def requests_for(side: Side, questions: list[str], settings: GenerationSettings = GREEDY, seed: int = 0) -> list[Request]:
    return [side.request(convo(q), settings, seed=seed) for q in questions]


def test_greedy_batch_equals_generate_token_for_token(base):
    """Mixed prompt lengths (left padding, per-row positions), rows that stop early and leave the batch."""
    for adapter, questions in ((None, QUESTIONS), ("lora", QUESTIONS[1:])):
        side = Side(base, adapter, str(adapter))
        expected = hf_generate(side, questions, GREEDY.max_new_tokens)
        assert run(requests_for(side, questions)) == expected, adapter
        assert len({len(p) for p in (base.prompt_ids(convo(q)) for q in QUESTIONS)}) == len(QUESTIONS)


def test_mixed_adapter_batch_equals_each_side_alone(base):
    sides = [Side(base, None, "base"), Side(base, "lora", "lora"), Side(base, "dora", "dora")]
    alone = [run(requests_for(side, QUESTIONS[2:3]))[0] for side in sides]
    together = run([side.request(convo(QUESTIONS[2]), GREEDY) for side in sides])
    assert together == alone
    assert alone[0] != alone[1] and alone[0] != alone[2]  # the adapters do change the answer


def test_request_joining_a_running_batch_matches_its_solo_answer(base):
    """A request that arrives while another decodes is prefilled and merged into the running KV cache."""
    side, tuned = Side(base, None, "base"), Side(base, "lora", "lora")
    solo = [run(requests_for(side, QUESTIONS[1:2]))[0], run(requests_for(tuned, QUESTIONS[2:3]))[0]]
    first, second = requests_for(side, QUESTIONS[1:2])[0], requests_for(tuned, QUESTIONS[2:3])[0]
    updates: queue.Queue = queue.Queue()
    first.listener = second.listener = updates
    base.scheduler.submit([first])
    while len(first.generated) < 5:
        updates.get(timeout=60)
    base.scheduler.submit([second])
    while not (first.done and second.done):
        updates.get(timeout=60)
    assert [first.generated, second.generated] == solo


def test_two_concurrent_streams_finish_and_match_their_solo_answers(base):
    pairs = [(Side(base, None, "base"), Side(base, "lora", "lora")), (Side(base, "lora", "lora"), Side(base, None, "base"))]
    questions = [QUESTIONS[0], QUESTIONS[2]]
    solo = [[engine.answer(side, convo(q), GREEDY) for side in pair] for pair, q in zip(pairs, questions)]
    results: list = [None, None]

    def chat(index: int) -> None:
        pair = pairs[index]
        for texts in engine.stream([(pair[0], convo(questions[index])), (pair[1], convo(questions[index]))], GREEDY):
            results[index] = texts

    threads = [threading.Thread(target=chat, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == solo


def test_sampled_answers_depend_on_their_seed_only(base):
    """Per-request RNG: a sampled answer is the same alone or batched with others."""
    side = Side(base, "lora", "lora")
    settings = GenerationSettings(temperature=0.9, top_p=0.9, max_new_tokens=8, seed=7)
    alone = engine.generate_batch(side, [convo(QUESTIONS[0])], settings)
    batched = engine.generate_batch(side, [convo(QUESTIONS[0]), convo(QUESTIONS[1])], settings, batch_size=2)
    assert batched[0] == alone[0]
    assert engine.generate_batch(side, [convo(QUESTIONS[0])], GenerationSettings(temperature=0.9, max_new_tokens=8, seed=8)) != alone


def test_cut_marker_and_stop_on_eos(base):
    side = Side(base, None, "base")
    short = GenerationSettings(temperature=0.0, max_new_tokens=3)
    *_, (cut,) = engine.stream([(side, convo(QUESTIONS[1]))], short)
    assert cut.endswith("… (cut at 3 tokens)") and engine.without_cut_marker(cut) != cut
    shown, plain = engine.generate_batch(side, [convo(QUESTIONS[1])], short, show_cut=True)[0], engine.generate_batch(side, [convo(QUESTIONS[1])], short)[0]
    assert shown == engine.mark_cut(plain, 3) and "cut at" not in plain
    # "2+2?" ends well before 64 tokens: the stop token ends it (not shown, not counted, no marker)
    request = requests_for(side, [QUESTIONS[2]], GenerationSettings(temperature=0.0, max_new_tokens=64))[0]
    generated = run([request])[0]
    reference = hf_generate(side, [QUESTIONS[2]], 64)[0]
    assert generated == reference and len(generated) < 64 and not request.cut
    assert "cut at" not in request.text()


def test_tools_are_rendered_as_training_renders_them(base):
    from studio.data.render import texts

    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    ids = base.prompt_ids(convo("Weather in Paris?"), tools=tools)
    prompt, _ = texts({"messages": convo("Weather in Paris?"), "tools": tools}, base.tokenizer)
    assert base.tokenizer.decode(ids) == prompt and "get_weather" in prompt
    assert engine.generate_batch(Side(base, None, "base"), [convo("Weather in Paris?")], GenerationSettings(temperature=0.0, max_new_tokens=4), tools=tools)[0]
