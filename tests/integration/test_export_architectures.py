"""GGUF export of the architectures it claims (llama, qwen2), on tiny random-initialised models built from
each config with the embedded tokenizer; checked by llama.cpp itself. One f16 conversion per model feeds
the q4_k_m quantization. Other architectures are refused; a failed quantization leaves no file."""

from __future__ import annotations

import pytest
import torch

from studio import models
from studio.errors import StudioError
from studio.export import gguf_name, quantize_gguf, write_gguf

pytestmark = pytest.mark.integration

PROMPTS = [[{"role": "user", "content": "What is 5 times 6?"}]]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(models.resolve("embedded").path)


def tiny_model(arch: str, tokenizer, folder):
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    config_class = {"llama": LlamaConfig, "qwen2": Qwen2Config}[arch]
    config = config_class(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=(arch == "qwen2"), initializer_range=0.1,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):  # qwen2's q/k/v biases: non-zero, so their mapping is checked too
                param.normal_(0.0, 0.5)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_tiny_model_converts_quantizes_and_llama_cpp_agrees(arch, tokenizer, tmp_path):
    import gguf
    import llama_cpp

    folder = tmp_path / arch
    model = tiny_model(arch, tokenizer, folder)
    f16, q4 = folder / gguf_name("f16"), folder / gguf_name("q4_k_m")
    write_gguf(folder, f16)
    quantize_gguf(f16, q4, "q4_k_m")

    fields = gguf.GGUFReader(str(f16)).fields
    assert fields["general.architecture"].contents() == arch
    assert fields["tokenizer.chat_template"].contents() == tokenizer.chat_template
    assert fields["tokenizer.ggml.eos_token_id"].contents() == tokenizer.eos_token_id
    # transformers splits text for a qwen2 model with Qwen's regex whatever the vocab, so llama.cpp must too
    assert fields["tokenizer.ggml.pre"].contents() == {"llama": "smollm", "qwen2": "qwen2"}[arch]
    assert gguf.GGUFReader(str(q4)).fields["general.file_type"].contents() == llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    assert q4.stat().st_size < 0.6 * f16.stat().st_size

    # logits over a whole prompt, llama.cpp against transformers f32. The conversion is right when
    # llama.cpp computes the same function: f16 logits within 5% of their spread at every prompt position
    # (a wrong q/k permutation or a lost bias moves them by about the spread). A random model's greedy
    # runs hit near-ties, so the 16-token agreement is asserted on the trained demo model instead
    # (test_export_roundtrip); q4_k_m's agreement here is printed.
    text = tokenizer.apply_chat_template(PROMPTS[0], add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        expected = model(input_ids=torch.tensor([ids])).logits[0].float().numpy()
    spread = float(expected.std())
    for path in (f16, q4):
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=256, logits_all=True, verbose=False)
        assert llm.tokenize(text.encode(), add_bos=True, special=True) == ids  # llama.cpp splits text as transformers does
        llm.eval(ids)
        got = llm.scores[: len(ids)]
        llm.close()
        top1, worst = float((got.argmax(-1) == expected.argmax(-1)).mean()), float(abs(got - expected).max())
        print(arch, path.name, "top-1 agreement", round(top1, 3), "max |diff|", round(worst, 4), "logit std", round(spread, 3))
        if path == f16:
            assert top1 >= 0.8 and worst < 0.05 * spread


def test_other_architectures_are_refused(tokenizer, tmp_path):
    from transformers import GPT2Config

    folder = tmp_path / "gpt2"
    folder.mkdir()
    GPT2Config(n_layer=1, n_embd=64, n_head=2).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    with pytest.raises(StudioError, match="supports llama and qwen2 models; this one is 'gpt2'"):
        write_gguf(folder, folder / gguf_name("f16"))
    assert not list(folder.glob("*.gguf*"))


def test_a_failed_quantization_leaves_no_file(tmp_path):
    source = models.embedded_gguf_path()
    broken = tmp_path / "broken-f16.gguf"
    broken.write_bytes(source.read_bytes()[: source.stat().st_size // 3])  # a copy cut short, as by a full disk
    target = tmp_path / "out" / gguf_name("q4_k_m")
    target.parent.mkdir()
    with pytest.raises(StudioError, match="llama.cpp could not quantize broken-f16.gguf to q4_k_m"):
        quantize_gguf(broken, target, "q4_k_m")
    assert list(target.parent.iterdir()) == []
