"""Export a trained run: the PEFT adapter, merged safetensors, or GGUF for llama.cpp / Ollama, with a model card.

- Every export names the base model by its public identity (`models.public_identity`): the adapter's
  `adapter_config.json` and the card's `base_model` carry a Hub id, so the card's snippet runs on a
  machine that has only the Hub.
- merged: the adapter folded into the base weights with PEFT's `merge_and_unload`, saved with
  `save_pretrained`, so plain `transformers` loads it without peft.
- gguf: the merged model is written once as an f16 GGUF with the `gguf` package's GGUFWriter,
  following llama.cpp's convert_hf_to_gguf (tensor names from gguf's TensorNameMap, llama's q/k rows
  permuted, 1-D tensors in f32, the GPT-2-style BPE vocab, merges, chat template and EOS/stop ids).
  Every other type (q8_0, q6_k, q5_k_m, q4_k_m) comes from that file through llama.cpp's own
  quantizer (`llama_cpp.llama_model_quantize`). Each file is then checked by llama.cpp itself: it
  loads, tokenizes the eval prompts as transformers does, and greedy-generates the same first tokens
  as the tuned model in transformers, stopping by EOS.
- --ollama writes a Modelfile whose TEMPLATE is the tokenizer's chat template in Go-template syntax.
- --push uploads the folder to the Hub in one commit.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from . import models, paths
from .errors import StudioError
from .resources import asset

FORMATS = ("adapter", "merged", "gguf")
# GGUF types and llama.cpp's name for each (llama.h `enum llama_ftype`, read from the llama_cpp binding).
QUANTS = {"f16": "LLAMA_FTYPE_MOSTLY_F16", "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
          "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}
DEFAULT_QUANT = "q4_k_m"  # "Ollama / llama.cpp"
GGUF_ARCHITECTURES = ("llama", "qwen2")
VERIFY_PROMPT = "What is the capital of France?"
CHECK_TOKENS = 16  # llama.cpp vs transformers: the first 16 greedy tokens
CHECK_PROMPTS = 10
STOP_PROMPTS = 3  # the shortest eval prompts must end by EOS ...
STOP_LIMIT = 128  # ... within this many tokens
LLAMA_REQUIREMENTS = asset("requirements-llama.txt")  # the pin, shipped as package data (also pyproject's [llama] extra)
# CPU-only llama.cpp for any x86-64-v3 machine (not -march=native, so pip's wheel cache stays portable),
# without the multimodal library this export never uses.
LLAMA_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"
LLAMA_BUILD_MINUTES = 7  # 800 CPU-seconds measured (2 cores, 2 compile jobs)
# llama.cpp names the BPE pre-tokenizer after a hash of how it splits a fixed text (convert_hf_to_gguf's
# get_vocab_base_pre); the hashes of the families this export writes, copied from there.
CHKTXT = ('\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n🚀 (normal) 😶\u200d🌫️ (multiple emojis concatenated) ✅ 🦙🦙 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 '
          'កាន់តែពិសេសអាច😁 ?我想在apple工作1314151天～ ------======= нещо на Български \'\'\'\'\'\'```````""""......!!!!!!?????? '
          'I\'ve been \'told he\'s there, \'RE you sure? \'M not sure I\'ll make it, \'D you like some tea? We\'Ve a\'lL')
PRE_TOKENIZERS = {
    "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",  # HuggingFaceTB/SmolLM-135M
    "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",  # Qwen/Qwen1.5-7B
    "d4540891389ea895b53b399da6ac824becc30f2fba0e9ddbb98f92e55ca0e97c": "qwen2",  # Qwen/Qwen3-Embedding-0.6B
    "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",  # meta-llama/Meta-Llama-3-8B
    "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",  # openai-community/gpt2
}


def run_weights(record) -> tuple[str, Path]:
    """('adapter', folder) for LoRA runs, ('model', folder) for full fine-tunes."""
    run_dir = Path(record.run_dir)
    if (run_dir / "adapter" / "adapter_model.safetensors").is_file():
        return "adapter", run_dir / "adapter"
    if (run_dir / "model" / "config.json").is_file():
        return "model", run_dir / "model"
    raise StudioError(f"run {record.id} has no trained weights to export (status: {record.status}).", hint="Export a completed run.")


def prepare_out(out: str | Path) -> Path:
    """An empty (or new) folder; never write over what the user already has there."""
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StudioError(f"{out} already exists and is not an empty folder.", where="--out", hint="Choose a new folder name; nothing was overwritten.")
    out.mkdir(parents=True, exist_ok=True)
    return out


def base_identity(record) -> models.PublicIdentity:
    from .chat import run_base_source

    return models.public_identity(run_base_source(record))


def check_quants(quants) -> tuple[str, ...]:
    quants = tuple(dict.fromkeys(q.lower() for q in quants)) or (DEFAULT_QUANT,)
    bad = [q for q in quants if q not in QUANTS]
    if bad:
        raise StudioError(f"unknown GGUF type {bad[0]!r}.", where="--quant", hint=f"Choose from {', '.join(QUANTS)}.")
    return quants


def export_run(record, fmt: str, out: str | Path, *, quants=(DEFAULT_QUANT,), verify: bool = True, ollama: bool = False,
               system: str | None = None, push: str | None = None, progress: Callable[[float, str], None] | None = None) -> dict:
    """Export one run into `out` (an empty folder) and write its model card. Returns a summary.

    On any failure or cancellation (SIGTERM, Ctrl-C) the folder is removed: nothing half-written stays."""
    if fmt not in FORMATS:
        raise StudioError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.", where="--format")
    quants = check_quants(quants)
    if ollama and fmt != "gguf":
        raise StudioError("an Ollama Modelfile needs a GGUF export.", where="--ollama", hint="Add --format gguf.")
    report = progress or (lambda fraction, message: None)
    kind, weights = run_weights(record)
    if fmt == "adapter" and kind != "adapter":
        raise StudioError(f"run {record.id} is a full fine-tune; it has no adapter.", where="--format", hint="Use --format merged.")
    if fmt == "gguf":
        check_gguf_architecture(_base_config(record))
    if push:
        check_push(push)
    identity = base_identity(record)
    out = prepare_out(out)
    started = time.time()
    summary: dict = {"run_id": record.id, "format": fmt, "out": str(out), "files": [], "base_model": identity.id}
    if identity.note:
        summary["base_model_note"] = identity.note
    try:
        with _cancel_on_sigterm():
            if fmt == "adapter":
                report(0.2, "copying the adapter")
                write_adapter(weights, out, identity)
            elif fmt == "merged":
                report(0.1, "merging the adapter into the base weights")
                write_merged(record, out)
                if verify:
                    report(0.7, "loading the merged model back with plain transformers")
                    summary["verification"] = verify_merged(record, out)
            else:
                summary.update(export_gguf(record, out, quants, identity=identity, verify=verify, ollama=ollama, system=system, report=report))
            summary["seconds"] = round(time.time() - started, 2)
            model_card(record, fmt, summary, push=push).save(out / "README.md")
            summary["files"] = sorted(p.name for p in out.iterdir())
            if push:
                report(0.95, f"uploading to the Hub as {push}")
                summary["pushed"] = push_folder(out, push)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)  # only the folder this export created or found empty
        raise
    report(1.0, "done")
    return summary


@contextmanager
def _cancel_on_sigterm():
    """A cancel (SIGTERM) unwinds like Ctrl-C, so the cleanup above runs instead of leaving half a file."""
    def stop(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: the caller owns cancellation
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def safe_name(text: str) -> str:
    return paths.safe_name(text, fallback="model")


def write_adapter(weights: Path, out: Path, identity: models.PublicIdentity) -> None:
    """The adapter folder, with `base_model_name_or_path` set to the base model's public identity
    (PEFT records the local cache path the run trained from, which no other machine has)."""
    for item in weights.iterdir():
        if item.is_file():
            shutil.copy2(item, out / item.name)
    models.set_adapter_base(out, identity.id)  # a run's own adapter has it already, unless it predates that


def _base_config(record) -> dict:
    """config.json of what the export will hold: the full fine-tune's, or the base model's."""
    from .chat import run_base_source

    kind, weights = run_weights(record)
    folder = weights if kind == "model" else models.resolve(run_base_source(record)).path
    return json.loads((Path(folder) / "config.json").read_text())


def check_gguf_architecture(config: dict) -> str:
    arch = str(config.get("model_type", "?"))
    if arch not in GGUF_ARCHITECTURES:
        raise StudioError(
            f"GGUF export supports {' and '.join(GGUF_ARCHITECTURES)} models; this one is '{arch}'.",
            where="--format gguf",
            hint="Export --format merged and convert it with llama.cpp's convert_hf_to_gguf.py.",
        )
    rope = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    if rope.get("rope_type", "default") not in ("default", None):
        raise StudioError(f"GGUF export does not handle rope scaling '{rope.get('rope_type')}' yet.", where="--format gguf", hint="Export --format merged instead.")
    return arch


def write_merged(record, out: Path) -> None:
    """Base + adapter merged with PEFT, saved as plain safetensors (or the full fine-tune copied)."""
    import torch

    from .chat import run_base_source

    kind, weights = run_weights(record)
    if kind == "model":
        for item in weights.iterdir():
            if item.is_file():
                shutil.copy2(item, out / item.name)
        return
    from peft import PeftModel

    resolved = models.resolve(run_base_source(record))
    base = models.load_causal_lm(resolved, dtype=torch.float32 if not torch.cuda.is_available() else torch.bfloat16)
    merged = PeftModel.from_pretrained(base, str(weights)).merge_and_unload()
    merged.save_pretrained(str(out), safe_serialization=True)
    models.load_tokenizer(models.ResolvedModel(str(weights), "local", weights, weights.name)).save_pretrained(str(out))


def _greedy_ids(model, tokenizer, max_new_tokens: int = 12):
    import torch

    text = tokenizer.apply_chat_template([{"role": "user", "content": VERIFY_PROMPT}], add_generation_prompt=True, tokenize=False)
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0].float()
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None, top_k=None,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    return logits, tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def verify_merged(record, out: Path) -> dict:
    """The merged folder loads with plain transformers (no peft) and answers as the tuned model does."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .chat import ChatEngine

    from .engine import GenerationSettings, without_cut_marker

    plain = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    _, merged_answer = _greedy_ids(plain, tokenizer)
    engine = ChatEngine.for_run(record)
    tuned_answer = engine.answer([{"role": "user", "content": VERIFY_PROMPT}], tuned=True, settings=GenerationSettings(temperature=0.0, max_new_tokens=12))
    tuned_answer = without_cut_marker(tuned_answer)
    return {"plain_transformers": True, "prompt": VERIFY_PROMPT, "merged_answer": merged_answer, "tuned_answer": tuned_answer.strip(),
            "same_answer": merged_answer.strip() == tuned_answer.strip()}


# ---------------------------------------------------------------- GGUF


def gguf_name(quant: str) -> str:
    return f"model-{quant}.gguf"


def export_gguf(record, out: Path, quants: tuple[str, ...], *, identity: models.PublicIdentity, verify: bool = True,
                ollama: bool = False, system: str | None = None, report=lambda f, m: None) -> dict:
    """Merge, write f16 once, quantize the other types from it with llama.cpp, check each with llama.cpp."""
    if verify or set(quants) - {"f16"}:
        ensure_llama_cpp(report)
    result: dict = {"quant": quants[0], "quants": list(quants)}
    with tempfile.TemporaryDirectory(prefix="studio-gguf-") as tmp:
        merged = Path(tmp) / "merged"
        merged.mkdir()
        report(0.05, "merging the adapter into the base weights")
        write_merged(record, merged)
        if ollama:  # before the long part: a template Ollama cannot express is refused early
            from transformers import AutoTokenizer

            modelfile = ollama_modelfile(AutoTokenizer.from_pretrained(str(merged)), gguf_name(quants[0]), system)
        report(0.2, "writing GGUF f16")
        f16 = (out if "f16" in quants else Path(tmp)) / gguf_name("f16")
        write_gguf(merged, f16, identity=identity)
        for index, quant in enumerate(q for q in quants if q != "f16"):
            report(0.3 + 0.25 * index / len(quants), f"quantizing to {quant} with llama.cpp")
            quantize_gguf(f16, out / gguf_name(quant), quant)
        if verify:
            report(0.55, "greedy answers of the tuned model in transformers")
            prompts = check_prompts(record)
            reference = transformers_reference(merged, prompts)
            result["checks"] = {}
            for index, quant in enumerate(quants):
                report(0.6 + 0.3 * index / len(quants), f"llama.cpp check of {quant}")
                result["checks"][quant] = llama_cpp_check(out / gguf_name(quant), reference)
            result["llama_cpp_check"] = result["checks"][quants[0]]
            if "f16" not in quants:  # the conversion itself, apart from what quantization loses
                report(0.9, "llama.cpp check of the f16 conversion")
                result["conversion_check"] = llama_cpp_check(f16, reference)
        if ollama:
            (out / "Modelfile").write_text(modelfile, encoding="utf-8")
    return result


def ensure_llama_cpp(report=lambda fraction, message: None, *, pinned: bool = False):
    """Import llama_cpp, installing the pinned llama-cpp-python the first time (PyPI has it only as
    source: pip builds llama.cpp with cmake, once; pip's wheel cache keeps the build). `pinned`
    (make's target) runs pip even when some version is there, so a changed pin is installed."""
    import logging

    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's own log: errors only
    if not pinned:
        try:
            return importlib.import_module("llama_cpp")
        except ImportError:
            pass
    report(0.02, f"installing llama-cpp-python: builds llama.cpp once, about {LLAMA_BUILD_MINUTES} min on 2 cores")
    env = {**os.environ, "CMAKE_ARGS": os.environ.get("CMAKE_ARGS") or LLAMA_CMAKE_ARGS}
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(LLAMA_REQUIREMENTS)],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        last = next((line.strip() for line in reversed(done.stderr.splitlines()) if line.strip()), f"exit {done.returncode}")
        raise StudioError(f"could not install llama-cpp-python for the GGUF export ({last[:200]}).", where="--format gguf",
                          hint="It needs PyPI, cmake and a C++ compiler: run `make llama-cpp`, or export --format merged.")
    importlib.invalidate_caches()
    return importlib.import_module("llama_cpp")


def write_gguf(model_dir: Path, path: Path, *, identity: models.PublicIdentity | None = None) -> None:
    """Write a llama or qwen2 safetensors folder as one f16 GGUF file (via `path.partial`, renamed when complete)."""
    import gguf
    import numpy as np
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoTokenizer

    raw_config = json.loads((model_dir / "config.json").read_text())
    arch_name = check_gguf_architecture(raw_config)
    arch = {"llama": gguf.MODEL_ARCH.LLAMA, "qwen2": gguf.MODEL_ARCH.QWEN2}[arch_name]
    config = AutoConfig.from_pretrained(str(model_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if tokenizer.backend_tokenizer.model.__class__.__name__ != "BPE" or not (model_dir / "tokenizer.json").is_file():
        raise StudioError("GGUF export supports byte-level BPE tokenizers (tokenizer.json) only.", where="--format gguf", hint="Export --format merged instead.")
    rope = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})

    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    partial = path.with_name(path.name + ".partial")
    try:
        writer = gguf.GGUFWriter(str(partial), gguf.MODEL_ARCH_NAMES[arch])
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(path.stem)
        if identity is not None and identity.on_hub:
            organization, name = identity.id.split("/")
            writer.add_base_model_count(1)
            writer.add_base_model_name(0, name)
            writer.add_base_model_organization(0, organization)
            writer.add_base_model_repo_url(0, f"https://huggingface.co/{identity.id}")
        writer.add_context_length(config.max_position_embeddings)
        writer.add_embedding_length(config.hidden_size)
        writer.add_block_count(config.num_hidden_layers)
        writer.add_feed_forward_length(config.intermediate_size)
        writer.add_head_count(n_head)
        writer.add_head_count_kv(n_kv)
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
        writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
        writer.add_layer_norm_rms_eps(config.rms_norm_eps)
        writer.add_rope_dimension_count(head_dim)
        writer.add_vocab_size(config.vocab_size)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        _add_vocab(writer, model_dir, tokenizer, config.vocab_size)

        state = {}
        for shard in sorted(model_dir.glob("*.safetensors")):
            state.update(load_file(str(shard)))
        names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
        tied = bool(getattr(config, "tie_word_embeddings", False))
        for name, tensor in state.items():
            if tied and name == "lm_head.weight":
                continue  # llama.cpp reads a missing output.weight as tied to token_embd
            if name.endswith("rotary_emb.inv_freq"):
                continue
            new_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
            if new_name is None:
                raise StudioError(f"cannot map tensor {name} to a GGUF name.", where="--format gguf")
            tensor = tensor.to(torch.float32)
            if arch_name == "llama":  # llama.cpp's LlamaModel permutes q/k; Qwen2 uses NEOX rope and keeps them
                if name.endswith(("q_proj.weight", "q_proj.bias")):
                    tensor = _permute(tensor, n_head, n_head)
                elif name.endswith(("k_proj.weight", "k_proj.bias")):
                    tensor = _permute(tensor, n_head, n_kv)
            data = tensor.numpy()
            writer.add_tensor(new_name, data.astype(np.float32 if data.ndim <= 1 else np.float16))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _permute(weights, n_head: int, n_head_kv: int):
    """llama.cpp's LlamaModel.permute: interleave the rotary halves of each head, as llama.cpp expects."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def pre_tokenizer_name(tokenizer) -> str:
    """llama.cpp's name for the tokenizer's pre-tokenizer, found as convert_hf_to_gguf finds it."""
    import hashlib

    digest = hashlib.sha256(str(tokenizer.encode(CHKTXT)).encode()).hexdigest()
    if digest in PRE_TOKENIZERS:
        return PRE_TOKENIZERS[digest]
    # transformers may rebuild the split itself (Qwen2Tokenizer always splits with Qwen's regex, whatever
    # the vocab): then the regex names it
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX as QWEN2_REGEX

    def patterns(node):
        if isinstance(node, dict):
            if node.get("type") == "Split":
                yield (node.get("pattern") or {}).get("Regex")
            for value in node.values():
                yield from patterns(value)
        elif isinstance(node, list):
            for value in node:
                yield from patterns(value)

    if QWEN2_REGEX in patterns(json.loads(tokenizer.backend_tokenizer.to_str()).get("pre_tokenizer")):
        return "qwen2"
    raise StudioError(
        "llama.cpp does not know this tokenizer's pre-tokenizer (its convert_hf_to_gguf hash "
        f"{digest[:12]}... is not among the {len(PRE_TOKENIZERS)} this export writes).",
        where="--format gguf",
        hint="Export --format merged and convert it with llama.cpp's convert_hf_to_gguf.py.",
    )


def _add_vocab(writer, model_dir: Path, tokenizer, vocab_size: int) -> None:
    """The GPT-2-style vocab as llama.cpp's convert_hf_to_gguf writes it (get_vocab_base), with the
    merges, the special token ids (EOS, ...) and the chat template from the tokenizer files."""
    import gguf

    reverse = {index: token for token, index in tokenizer.get_vocab().items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for index in range(vocab_size):
        token = reverse.get(index)
        if token is None:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(token)
        if token in added:
            types.append(gguf.TokenType.CONTROL if decoder[index].special else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre_tokenizer_name(tokenizer))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=len(tokens))
    if special.chat_template is None and tokenizer.chat_template:
        special.chat_template = tokenizer.chat_template
    if tokenizer.eos_token_id is not None:  # the tokenizer's own EOS (the studio aligns it with the model config)
        special.special_token_ids["eos"] = tokenizer.eos_token_id
    special.add_to_gguf(writer)
    try:  # end of turn: the special token the chat template closes each message with (<|im_end|>)
        post = chat_wrappers(tokenizer)["post"]
    except StudioError:
        post = ""
    turn_end = [t for t in tokenizer.all_special_tokens if t and post.startswith(t)]
    if turn_end:
        writer.add_eot_token_id(tokenizer.convert_tokens_to_ids(turn_end[0]))


def quantize_gguf(source: Path, target: Path, quant: str) -> None:
    """llama.cpp's own quantizer (llama_model_quantize), into `target.partial`, renamed when complete."""
    llama_cpp = ensure_llama_cpp()
    if quant == "f16":
        shutil.copy2(source, target)
        return
    import io
    from contextlib import redirect_stderr

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANTS[quant])
    params.nthread = os.cpu_count() or 1
    partial = target.with_name(target.name + ".partial")
    log = io.StringIO()  # llama.cpp's log callback writes to sys.stderr: keep its reason for the one-line error
    try:
        with redirect_stderr(log):
            code = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params))
        if code != 0 or not partial.is_file():
            reason = next((line.strip() for line in reversed(log.getvalue().splitlines()) if line.strip()), f"code {code}")
            raise StudioError(f"llama.cpp could not quantize {source.name} to {quant} ({reason[:200]}).", where="--quant",
                              hint="Nothing was written; try another type or export --format merged.")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def check_prompts(record) -> list[list[dict]]:
    """The run's eval prompts (the conversations `studio eval` uses, minus their answers)."""
    from .evaluate import EvalOptions, eval_examples

    try:
        examples, _ = eval_examples(record, EvalOptions(max_examples=CHECK_PROMPTS))
        return [example["messages"][:-1] for example in examples]
    except StudioError:  # the training data is gone: the fixed check prompt still says something
        return [[{"role": "user", "content": VERIFY_PROMPT}]]


def transformers_reference(model_dir: Path, prompts: list[list[dict]]) -> list[dict]:
    """Per prompt: its text, token ids and the tuned (merged) model's first greedy tokens, up to EOS."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    eos = tokenizer.eos_token_id
    rows = []
    for messages in prompts:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), max_new_tokens=CHECK_TOKENS,
                                 do_sample=False, temperature=None, top_p=None, top_k=None, eos_token_id=eos, pad_token_id=eos)
        new = out[0, len(ids):].tolist()
        rows.append({"text": text, "ids": ids, "tokens": new[: new.index(eos) + 1] if eos in new else new})
    return rows


def llama_cpp_check(path: Path, reference: list[dict]) -> dict:
    """Load the GGUF with llama.cpp; tokenize each prompt as llama.cpp (and so Ollama) does, compare the
    first CHECK_TOKENS greedy tokens with transformers', and let the shortest prompts run to EOS."""
    llama_cpp = ensure_llama_cpp()
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=max(len(r["ids"]) for r in reference) + STOP_LIMIT + 8, n_batch=512,
                          n_threads=os.cpu_count() or 1, seed=0, verbose=False)
    vocab = llm._model.vocab  # the C vocab handle: llama_vocab_is_eog says which tokens end a turn
    short = set(sorted(range(len(reference)), key=lambda i: len(reference[i]["ids"]))[:STOP_PROMPTS])
    agree = same_prompt = stopped = 0
    answers = []
    for index, row in enumerate(reference):
        ids = llm.tokenize(row["text"].encode("utf-8"), add_bos=True, special=True)
        same_prompt += ids == row["ids"]
        limit = STOP_LIMIT if index in short else CHECK_TOKENS
        got, eog = [], False
        llm.reset()
        for token in llm.generate(ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
            got.append(token)
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                eog = True
                break
            if len(got) >= limit:
                break
        agree += got[:CHECK_TOKENS] == row["tokens"][:CHECK_TOKENS]
        stopped += eog and index in short
        answers.append(llm.detokenize(got[:CHECK_TOKENS]).decode("utf-8", errors="replace"))
    llm.close()
    return {"agree": agree, "total": len(reference), "stops": stopped == len(short), "stopped": stopped, "stop_prompts": len(short),
            "stop_limit": STOP_LIMIT, "same_prompt_tokens": same_prompt, "size_mb": round(path.stat().st_size / 2**20, 1), "first_answer": answers[0]}


def check_line(check: dict) -> str:
    """One line for the card and the UI."""
    return f"llama.cpp check: {check['agree']}/{check['total']} identical, stops: {'yes' if check['stops'] else 'no'}"


# ---------------------------------------------------------------- Ollama


def chat_wrappers(tokenizer) -> dict:
    """The chat template seen as text around each message: `pre[role] + content + post`, then the
    generation prompt. Found by rendering sentinel messages, then checked on a two-turn conversation;
    a template that does more than wrap messages (dates, tool lists, ...) is refused."""
    sys_, user, asst, user2 = "\x02S\x02", "\x02U\x02", "\x02A\x02", "\x02V\x02"

    def render(messages, generation):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=generation, tokenize=False)

    refused = StudioError("the chat template does more than wrap each message, so it has no Ollama TEMPLATE equivalent here.",
                          where="--ollama", hint="Export without --ollama; llama.cpp reads the chat template from the GGUF itself.")
    try:
        full = render([{"role": "system", "content": sys_}, {"role": "user", "content": user}, {"role": "assistant", "content": asst}], False)
        head, rest = full.split(sys_)
        between_su, rest = rest.split(user)
        between_ua, post = rest.split(asst)
    except ValueError:
        raise refused from None
    if not (between_su.startswith(post) and between_ua.startswith(post)):
        raise refused
    pre = {"system": head, "user": between_su[len(post):], "assistant": between_ua[len(post):]}
    wrappers = {"pre": pre, "post": post, "generation": pre["assistant"], "default_system": ""}
    alone = render([{"role": "user", "content": user}], True)
    tail = pre["user"] + user + post + pre["assistant"]
    if alone != tail:  # the template adds its own system turn when there is none
        if not (alone.startswith(pre["system"]) and alone.endswith(post + tail)):
            raise refused
        wrappers["default_system"] = alone[len(pre["system"]): -len(post + tail)]
    turns = [{"role": "system", "content": sys_}, {"role": "user", "content": user}, {"role": "assistant", "content": asst}, {"role": "user", "content": user2}]
    if render(turns, True) != render_wrapped(wrappers, turns):
        raise refused
    return wrappers


def render_wrapped(wrappers: dict, messages: list[dict]) -> str:
    return "".join(wrappers["pre"][m["role"]] + m["content"] + wrappers["post"] for m in messages) + wrappers["generation"]


def ollama_modelfile(tokenizer, gguf_file: str, system: str | None = None) -> str:
    """FROM, a Go TEMPLATE equal to the chat template, a PARAMETER stop per stop string, SYSTEM when set.

    The TEMPLATE uses only `range .Messages`, `if/else if eq .Role "..."`, `.Content` and literal text,
    without `{{-` trimming (it would eat the template's own newlines). Ollama puts SYSTEM first in
    .Messages when a request has no system message, so a template's built-in default system prompt
    becomes the Modelfile's SYSTEM."""
    wrappers = chat_wrappers(tokenizer)
    pre, post = wrappers["pre"], wrappers["post"]
    pieces = [pre[role] for role in pre] + [post, system or "", wrappers["default_system"]]
    if any("{{" in piece or '"""' in piece for piece in pieces):
        raise StudioError('the chat template or system prompt contains "{{" or """, which a Modelfile cannot quote.', where="--ollama")
    branches = "{{ else if".join(f' eq .Role "{role}" }}}}{pre[role]}{{{{ .Content }}}}{post}' for role in ("system", "user", "assistant"))
    template = "{{ range .Messages }}{{ if" + branches + "{{ end }}{{ end }}" + wrappers["generation"]
    stops = stop_strings(tokenizer, wrappers)
    lines = [f"FROM ./{gguf_file}", f'TEMPLATE """{template}"""']
    lines += [f"PARAMETER stop {json.dumps(stop, ensure_ascii=False)}" for stop in stops]
    system_text = system if system is not None else wrappers["default_system"]
    if system_text:
        lines.append(f'SYSTEM """{system_text}"""')
    return "\n".join(lines) + "\n"


def stop_strings(tokenizer, wrappers: dict) -> list[str]:
    """EOS, then every special token that the template writes around messages (e.g. <|im_start|>)."""
    text = "".join(wrappers["pre"].values()) + wrappers["post"]
    special = [t for t in tokenizer.all_special_tokens if t and t in text]
    return list(dict.fromkeys(([tokenizer.eos_token] if tokenizer.eos_token else []) + sorted(special, key=text.index)))


# ---------------------------------------------------------------- Hub


def check_push(repo_id: str) -> None:
    """Before anything is written: a valid repo id, a token and a reachable Hub, or one clear line."""
    from huggingface_hub import get_token

    if not models.is_hub_id(repo_id):
        raise StudioError(f"{repo_id!r} is not a Hub repo id.", where="--push", hint="Use OWNER/NAME, e.g. `me/smollm2-json-answers`.")
    if not get_token():
        raise StudioError("pushing needs a Hugging Face token; none is set, so nothing was exported or uploaded.", where="--push",
                          hint="Set HF_TOKEN or run `hf auth login`, then export again (or drop --push).")
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise StudioError("HF_HUB_OFFLINE=1, so nothing was exported or uploaded.", where="--push", hint="Unset HF_HUB_OFFLINE or drop --push.")
    if not models.hub_reachable(timeout=5):
        raise StudioError(f"the Hub ({models.hub_endpoint()}) cannot be reached, so nothing was exported or uploaded.", where="--push",
                          hint="Export without --push now and upload the folder later.")


def push_folder(folder: Path, repo_id: str) -> str:
    """One commit with every file: the Hub never shows half an upload."""
    from huggingface_hub import HfApi

    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", exist_ok=True)
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message="Export from Fine-tuning Studio")
    except Exception as err:  # network, auth, permissions: one line, the upload is one commit so nothing partial landed
        raise StudioError(f"uploading to {repo_id} failed ({type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}); nothing was committed.",
                          where="--push", hint="Check the token's write access and try again.") from None
    return getattr(commit, "commit_url", None) or f"https://huggingface.co/{repo_id}"


# ---------------------------------------------------------------- card


def dataset_manifest(data_path: str) -> dict:
    """Which data trained the run: path, checksum, format and row count."""
    path = Path(data_path)
    manifest: dict = {"path": str(path)}
    if not path.is_file():
        manifest["note"] = "the file is no longer at this path"
        return manifest
    from .data import load_dataset_file

    manifest["sha256"] = models.sha256_file(path)
    manifest["bytes"] = path.stat().st_size
    try:
        loaded = load_dataset_file(path)
        manifest.update(format=loaded.format, rows=len(loaded.rows), usable_rows=len(loaded.conversations))
    except StudioError as err:
        manifest["note"] = str(err)
    provenance = path.with_suffix(".provenance.json")
    if provenance.is_file():
        manifest["provenance"] = json.loads(provenance.read_text())
    return manifest


def usage_snippet(fmt: str, summary: dict, push: str | None) -> str:
    """How to load the export with only the Hub: the base model by its Hub id, the export by its repo
    id once pushed (else this folder, by name)."""
    where = push or f"./{Path(summary['out']).name}"
    base = summary["base_model"]
    if fmt == "adapter":
        return (f"```python\nfrom peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n\n"
                f"model = AutoPeftModelForCausalLM.from_pretrained(\"{where}\")  # fetches the base model {base} from the Hub\n"
                f"tokenizer = AutoTokenizer.from_pretrained(\"{where}\")\n```\n"
                f"The adapter applies on top of the base model `{base}` (`base_model_name_or_path` in adapter_config.json).")
    if fmt == "merged":
        return (f"```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                f"model = AutoModelForCausalLM.from_pretrained(\"{where}\")\ntokenizer = AutoTokenizer.from_pretrained(\"{where}\")\n```\n"
                "No peft needed: the adapter is merged into the weights.")
    main = gguf_name(summary["quant"])
    lines = ["```bash"]
    if (Path(summary["out"]) / "Modelfile").is_file():
        lines.append(f"ollama create {safe_name(Path(summary['out']).name).lower()} -f Modelfile")
    lines += [f"llama-cli -m {main} -cnv", "```", "", "```python", "from llama_cpp import Llama", ""]
    lines.append(f'llm = Llama.from_pretrained("{push}", filename="{main}")' if push else f'llm = Llama(model_path="{where}/{main}")')
    lines += ['print(llm.create_chat_completion(messages=[{"role": "user", "content": "Hello"}])["choices"][0]["message"]["content"])', "```"]
    return "\n".join(lines)


def model_card(record, fmt: str, summary: dict, *, push: str | None = None):
    """README.md as a huggingface_hub ModelCard: base model (public id), method, config, dataset
    manifest, eval results, the llama.cpp check and how to load it."""
    from huggingface_hub import ModelCard, ModelCardData

    from .evaluate import latest_results, summary_markdown

    from .config import RunConfig

    config_text = (Path(record.run_dir) / "config.yaml").read_text() if (Path(record.run_dir) / "config.yaml").is_file() else ""
    cfg = RunConfig.of_run(record.run_dir)  # the card shows the file as written; what it reads comes typed
    base = summary["base_model"]
    on_hub = "base_model_note" not in summary
    results = latest_results(record)
    data = ModelCardData(
        base_model=base if on_hub else None,
        library_name={"adapter": "peft", "merged": "transformers", "gguf": "gguf"}[fmt],
        pipeline_tag="text-generation",
        tags=["fine-tuning-studio", str(record.method)] + (["gguf", "llama-cpp", "ollama"] if fmt == "gguf" else []),
    )
    lines = [
        f"# {record.name}",
        "",
        f"Fine-tuned with Fine-tuning Studio from **{base}** using **{record.method}** "
        f"(run `{record.id}`, status {record.status}). Exported as **{fmt}** on {time.strftime('%Y-%m-%d')}.",
    ]
    if not on_hub:
        lines += ["", f"> Note: {summary['base_model_note']}"]
    if fmt == "gguf":
        lines += ["", f"GGUF files: {', '.join(gguf_name(q) for q in summary['quants'])} (quantized by llama.cpp from the f16 conversion)."]
        for quant, check in (summary.get("checks") or {}).items():
            lines.append(f"- {quant}: {check_line(check)}")
        if summary.get("conversion_check"):
            lines.append(f"- the f16 conversion they were quantized from (not kept): {check_line(summary['conversion_check'])}")
    lines += ["", "## How to use", "", usage_snippet(fmt, summary, push), "", "## Training config", "", "```yaml", config_text.strip(), "```", "",
              "Reproduce it headless: `python -m studio train config.yaml`.", "", "## Dataset", "", "```json",
              json.dumps(dataset_manifest(str(cfg.data if cfg and cfg.data else record.dataset)), indent=2), "```", "", "## Training result", "", "```json",
              json.dumps(record.final_metrics, indent=2), "```", "", "## Evaluation", "",
              summary_markdown(results) if results else "Not evaluated yet: run `python -m studio eval RUN_ID` before exporting to include results here."]
    checks = summary.get("verification") or summary.get("checks")
    if checks:
        lines += ["", "## Export check", "", "```json", json.dumps(checks, indent=2), "```"]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n" + "\n".join(lines) + "\n")


def zip_folder(folder: str | Path, target: str | Path | None = None) -> Path:
    """Zip an export folder for download (the zip sits beside the folder unless a target is given)."""
    folder = Path(folder)
    target = Path(target) if target else folder.with_suffix(".zip")
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for item in sorted(folder.rglob("*")):
            if item.is_file():
                archive.write(item, arcname=str(Path(folder.name) / item.relative_to(folder)))
    return target


def exports_dir() -> Path:
    from .paths import studio_home

    folder = studio_home() / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
