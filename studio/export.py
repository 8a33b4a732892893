"""Export a trained run: the PEFT adapter, merged safetensors, GGUF (f16 / q8_0), a model card, a zip.

- merged: the adapter folded into the base weights with PEFT's `merge_and_unload`, saved with
  `save_pretrained`, so plain `transformers` loads it without peft.
- gguf: written with the `gguf` package's GGUFWriter, following llama.cpp's convert_hf_to_gguf for
  llama-family models (tensor names from gguf's own TensorNameMap, q/k rows permuted, 1-D tensors
  kept in f32, GPT-2-style BPE vocab). Each file is verified by loading it back through
  transformers' GGUF loader and comparing logits with the merged model.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Callable

import yaml

from . import models
from .errors import StudioError

FORMATS = ("adapter", "merged", "gguf")
GGUF_TYPES = ("f16", "q8_0")
VERIFY_PROMPT = "What is the capital of France?"


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


def export_run(record, fmt: str, out: str | Path, *, gguf_types: tuple[str, ...] = GGUF_TYPES, verify: bool = True,
               progress: Callable[[float, str], None] | None = None) -> dict:
    """Export one run into `out` (an empty folder) and write its model card. Returns a summary."""
    if fmt not in FORMATS:
        raise StudioError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}.", where="--format")
    bad = [t for t in gguf_types if t not in GGUF_TYPES]
    if bad:
        raise StudioError(f"unknown GGUF type {bad[0]!r}; choose from {', '.join(GGUF_TYPES)}.", where="--gguf-type")
    report = progress or (lambda fraction, message: None)
    kind, weights = run_weights(record)
    if fmt == "adapter" and kind != "adapter":
        raise StudioError(f"run {record.id} is a full fine-tune; it has no adapter.", where="--format", hint="Use --format merged.")
    out = prepare_out(out)
    started = time.time()
    summary: dict = {"run_id": record.id, "format": fmt, "out": str(out), "files": []}
    try:
        if fmt == "adapter":
            report(0.2, "copying the adapter")
            for item in weights.iterdir():
                if item.is_file():
                    shutil.copy2(item, out / item.name)
        elif fmt == "merged":
            report(0.1, "merging the adapter into the base weights")
            write_merged(record, out)
            if verify:
                report(0.7, "loading the merged model back with plain transformers")
                summary["verification"] = verify_merged(record, out)
        else:
            with tempfile.TemporaryDirectory(prefix="studio-merge-") as tmp:
                report(0.05, "merging the adapter into the base weights")
                write_merged(record, Path(tmp))
                summary["verification"] = {}
                reference = merged_reference(Path(tmp)) if verify else None
                for index, qtype in enumerate(gguf_types):
                    report(0.2 + 0.35 * index, f"writing GGUF {qtype}")
                    path = out / f"{safe_name(record.name)}-{qtype}.gguf"
                    write_gguf(Path(tmp), path, qtype, source_gguf=source_gguf(record))
                    if verify:
                        report(0.35 + 0.35 * index, f"loading GGUF {qtype} back with transformers")
                        summary["verification"][qtype] = verify_gguf(reference, path)
        summary["seconds"] = round(time.time() - started, 2)
        (out / "README.md").write_text(model_card(record, fmt, summary), encoding="utf-8")
    except Exception:
        shutil.rmtree(out, ignore_errors=True)  # only the folder this export created or found empty
        raise
    summary["files"] = sorted(p.name for p in out.iterdir())
    report(1.0, "done")
    return summary


def safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-")[:60] or "model"


def source_gguf(record) -> Path | None:
    """The GGUF a run's base model came from (the embedded model or a .gguf file), if any."""
    from .chat import run_base_source

    source = run_base_source(record)
    if source in ("", models.EMBEDDED, "default"):
        return models.embedded_gguf_path()
    return Path(source) if source.endswith(".gguf") else None


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

    from .chat import ChatEngine, GenerationSettings

    plain = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    _, merged_answer = _greedy_ids(plain, tokenizer)
    engine = ChatEngine.for_run(record)
    tuned_answer = engine.answer([{"role": "user", "content": VERIFY_PROMPT}], tuned=True, settings=GenerationSettings(temperature=0.0, max_new_tokens=12))
    return {"plain_transformers": True, "prompt": VERIFY_PROMPT, "merged_answer": merged_answer, "tuned_answer": tuned_answer.strip(),
            "same_answer": merged_answer.strip() == tuned_answer.strip()}


def write_gguf(model_dir: Path, path: Path, qtype: str, *, source_gguf: Path | None = None) -> None:
    """Write a llama-family safetensors folder as one GGUF file (f16 or q8_0)."""
    import gguf
    import numpy as np
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(str(model_dir))
    if config.model_type != "llama":
        raise StudioError(
            f"GGUF export supports llama-family models; this one is '{config.model_type}'.",
            where="--format gguf",
            hint="Export --format merged and convert it with llama.cpp's convert_hf_to_gguf.py.",
        )
    rope = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    if rope.get("rope_type", "default") not in ("default", None):
        raise StudioError(f"GGUF export does not handle rope scaling '{rope.get('rope_type')}' yet.", where="--format gguf", hint="Export --format merged instead.")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if tokenizer.backend_tokenizer.model.__class__.__name__ != "BPE" or not (model_dir / "tokenizer.json").is_file():
        raise StudioError("GGUF export supports byte-level BPE tokenizers (tokenizer.json) only.", where="--format gguf", hint="Export --format merged instead.")

    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    file_type = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[qtype]
    writer = gguf.GGUFWriter(str(path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(path.stem)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_vocab(writer, model_dir, tokenizer, config.vocab_size, source_gguf)

    state = {}
    for shard in sorted(model_dir.glob("*.safetensors")):
        state.update(load_file(str(shard)))
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
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
        if name.endswith(("q_proj.weight", "q_proj.bias")):
            tensor = _permute(tensor, n_head, n_head)
        elif name.endswith(("k_proj.weight", "k_proj.bias")):
            tensor = _permute(tensor, n_head, n_kv)
        data = tensor.numpy()
        if data.ndim <= 1:
            writer.add_tensor(new_name, data.astype(np.float32))
        elif qtype == "q8_0" and data.shape[-1] % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0] == 0:
            writer.add_tensor(new_name, gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(new_name, data.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _permute(weights, n_head: int, n_head_kv: int):
    """llama.cpp's LlamaModel.permute: interleave the rotary halves of each head, as llama.cpp expects."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _add_vocab(writer, model_dir: Path, tokenizer, vocab_size: int, source_gguf: Path | None) -> None:
    """The GPT-2-style vocab as llama.cpp's convert_hf_to_gguf writes it (get_vocab_base)."""
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
    writer.add_tokenizer_pre(_pre_tokenizer_name(source_gguf))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=len(tokens))
    special.add_to_gguf(writer)


def _pre_tokenizer_name(source_gguf: Path | None) -> str:
    """llama.cpp names the pre-tokenizer by a hash table we do not copy; reuse the source GGUF's name."""
    if source_gguf and source_gguf.is_file():
        import gguf

        field = gguf.GGUFReader(str(source_gguf)).fields.get("tokenizer.ggml.pre")
        if field is not None:
            return field.contents()
    return "default"


def merged_reference(merged_dir: Path) -> dict:
    """The merged safetensors model's logits and greedy answer on the check prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(merged_dir), dtype=torch.float32, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(merged_dir))
    logits, answer = _greedy_ids(model, tokenizer)
    return {"logits": logits, "answer": answer, "prompt_ids": _prompt_ids(tokenizer)}


def _prompt_ids(tokenizer) -> list[int]:
    text = tokenizer.apply_chat_template([{"role": "user", "content": VERIFY_PROMPT}], add_generation_prompt=True, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def verify_gguf(reference: dict, path: Path) -> dict:
    """Load the GGUF with transformers' GGUF loader and compare with the merged safetensors model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except Exception as err:  # the file is ours; a failure here is a bug worth showing in full
        raise StudioError(f"the written GGUF {path.name} does not load back with transformers ({type(err).__name__}: {err}).") from None
    ref_logits, ref_answer = reference["logits"], reference["answer"]
    logits, answer = _greedy_ids(loaded, tokenizer)
    same_tokens = _prompt_ids(tokenizer) == reference["prompt_ids"]
    return {
        "loads_with_transformers": True,
        "same_prompt_tokens": bool(same_tokens),
        "max_abs_logit_diff": float((logits - ref_logits).abs().max()) if logits.shape == ref_logits.shape else None,
        "top1_agreement": float((logits.argmax(-1) == ref_logits.argmax(-1)).float().mean()) if logits.shape == ref_logits.shape else 0.0,
        "merged_answer": ref_answer.strip(),
        "gguf_answer": answer.strip(),
        "same_answer": ref_answer.strip() == answer.strip(),
        "size_mb": round(path.stat().st_size / 2**20, 1),
    }


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


def model_card(record, fmt: str, summary: dict) -> str:
    """README.md: base model, method, config, dataset manifest, eval results and how to load it."""
    from .chat import run_base_source
    from .evaluate import latest_results, summary_markdown

    config_text = (Path(record.run_dir) / "config.yaml").read_text() if (Path(record.run_dir) / "config.yaml").is_file() else ""
    cfg = yaml.safe_load(config_text) or {}
    base = run_base_source(record)
    base_name = models.EMBEDDED_NAME if base in (models.EMBEDDED, "default", "") else base
    results = latest_results(record)
    usage = {
        "adapter": f"```python\nfrom peft import AutoPeftModelForCausalLM\nmodel = AutoPeftModelForCausalLM.from_pretrained(\"{summary['out']}\")\n```\n"
                   f"The adapter applies on top of the base model `{base_name}`.",
        "merged": f"```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\nmodel = AutoModelForCausalLM.from_pretrained(\"{summary['out']}\")\n"
                  f"tokenizer = AutoTokenizer.from_pretrained(\"{summary['out']}\")\n```\nNo peft needed: the adapter is merged into the weights.",
        "gguf": "```bash\nllama-cli -m MODEL-q8_0.gguf -cnv      # or: ollama create NAME -f Modelfile (FROM ./MODEL-q8_0.gguf)\n```\n"
                "```python\nfrom transformers import AutoModelForCausalLM\nmodel = AutoModelForCausalLM.from_pretrained(FOLDER, gguf_file=\"MODEL-q8_0.gguf\")\n```",
    }[fmt]
    lines = [
        "---",
        f"base_model: {base_name}",
        "library_name: " + ("peft" if fmt == "adapter" else "transformers" if fmt == "merged" else "gguf"),
        "tags: [fine-tuning-studio, " + str(record.method) + "]",
        "---",
        f"# {record.name}",
        "",
        f"Fine-tuned with Fine-tuning Studio from **{base_name}** using **{record.method}** "
        f"(run `{record.id}`, status {record.status}). Exported as **{fmt}** on {time.strftime('%Y-%m-%d')}.",
        "",
        "## How to use",
        "",
        usage,
        "",
        "## Training config",
        "",
        "```yaml",
        config_text.strip(),
        "```",
        "",
        "Reproduce it headless: `python -m studio train config.yaml`.",
        "",
        "## Dataset",
        "",
        "```json",
        json.dumps(dataset_manifest(str(cfg.get("data", record.dataset))), indent=2),
        "```",
        "",
        "## Training result",
        "",
        "```json",
        json.dumps(record.final_metrics, indent=2),
        "```",
        "",
        "## Evaluation",
        "",
        summary_markdown(results) if results else "Not evaluated yet: run `python -m studio eval RUN_ID` before exporting to include results here.",
    ]
    if summary.get("verification"):
        lines += ["", "## Export check", "", "```json", json.dumps(summary["verification"], indent=2), "```"]
    return "\n".join(lines) + "\n"


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
