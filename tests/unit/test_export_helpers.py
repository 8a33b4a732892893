"""Export pieces that need no model: safe output folders, llama.cpp's q/k permutation, zip, manifest."""

from __future__ import annotations

import copy
import json
import zipfile

import numpy as np
import pytest
import torch

from studio.errors import StudioError
from studio.export import _permute, dataset_manifest, prepare_out, zip_folder
from tests.conftest import DEMO_DATA


def test_out_folder_must_be_new_or_empty(tmp_path):
    assert prepare_out(tmp_path / "new" / "folder").is_dir()
    (tmp_path / "empty").mkdir()
    assert prepare_out(tmp_path / "empty") == tmp_path / "empty"
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("user data")
    with pytest.raises(StudioError, match="not an empty folder"):
        prepare_out(busy)
    assert (busy / "keep.txt").read_text() == "user data"


@pytest.mark.parametrize("n_head, n_kv", [(9, 9), (9, 3), (4, 2)])
def test_permutation_is_undone_by_the_transformers_gguf_loader(n_head, n_kv):
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    head_dim = 8
    rows = n_kv * head_dim
    weights = torch.randn(rows, 16)
    permuted = _permute(weights, n_head, n_kv).numpy()
    assert not np.allclose(permuted, weights.numpy())
    restored = LlamaTensorProcessor(config={})._reverse_permute_weights(permuted, n_head, n_kv)
    np.testing.assert_array_equal(restored, weights.numpy())


def test_zip_holds_the_folder(tmp_path):
    folder = tmp_path / "export"
    (folder / "sub").mkdir(parents=True)
    (folder / "README.md").write_text("card")
    (folder / "sub" / "w.bin").write_bytes(b"\x00" * 10)
    target = zip_folder(folder)
    assert target == tmp_path / "export.zip"
    with zipfile.ZipFile(target) as archive:
        assert sorted(archive.namelist()) == ["export/README.md", "export/sub/w.bin"]
        assert archive.read("export/README.md") == b"card"


def test_dataset_manifest_has_checksum_and_rows(tmp_path):
    manifest = dataset_manifest(str(DEMO_DATA))
    lines = DEMO_DATA.read_text().splitlines()
    assert manifest["rows"] == len(lines) and manifest["usable_rows"] == len(lines)
    assert manifest["format"] == "alpaca" and len(manifest["sha256"]) == 64
    assert "no longer" in dataset_manifest(str(tmp_path / "gone.jsonl"))["note"]


def test_public_identity_of_each_model_source(tmp_path):
    import json

    from studio.models import EMBEDDED_HUB_ID, public_identity

    assert public_identity("embedded").id == EMBEDDED_HUB_ID == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert public_identity(None).on_hub
    assert public_identity("Qwen/Qwen2.5-0.5B-Instruct") == public_identity("Qwen/Qwen2.5-0.5B-Instruct")
    assert public_identity("Qwen/Qwen2.5-0.5B-Instruct").id == "Qwen/Qwen2.5-0.5B-Instruct"
    saved = tmp_path / "my-copy"
    saved.mkdir()
    (saved / "config.json").write_text(json.dumps({"_name_or_path": "meta-llama/Llama-3.2-1B", "model_type": "llama"}))
    assert public_identity(str(saved)).id == "meta-llama/Llama-3.2-1B" and public_identity(str(saved)).note == ""
    for recorded in ("/home/me/.cache/llama", "", "not a/hub id"):
        (saved / "config.json").write_text(json.dumps({"_name_or_path": recorded}))
        identity = public_identity(str(saved))
        assert identity.id == "my-copy" and not identity.on_hub and "my-copy" in identity.note
    gguf_identity = public_identity(str(tmp_path / "tiny.Q4_K_M.gguf"))
    assert gguf_identity.id == "tiny.Q4_K_M" and not gguf_identity.on_hub and gguf_identity.note


# ---- Ollama Modelfile: parsed, and its TEMPLATE rendered by a small Go-template interpreter.
# Ollama is not installed here; the interpreter covers exactly the subset studio.export emits
# (`range .Messages`, `if`/`else if eq .Role "..."`, `.Content`, literal text, no `{{-` trimming) and
# refuses anything else, so a template outside that subset fails this test instead of passing unread.

import re


def parse_modelfile(text: str) -> dict:
    parsed: dict = {"PARAMETER": []}
    for match in re.finditer(r'^(FROM|TEMPLATE|SYSTEM|PARAMETER) (?:"""(.*?)"""|([^\n]*))$', text, re.M | re.S):
        key, value = match.group(1), match.group(2) if match.group(2) is not None else match.group(3)
        if key == "PARAMETER":
            name, raw = value.split(" ", 1)
            parsed["PARAMETER"].append((name, json.loads(raw)))
        else:
            parsed[key] = value
    return parsed


def render_go_template(template: str, messages: list[dict], system: str | None) -> str:
    """Ollama's rendering of a chat: SYSTEM becomes the first message when the chat has none."""
    if system and not any(m["role"] == "system" for m in messages):
        messages = [{"role": "system", "content": system}] + messages
    tokens = re.split(r"(\{\{.*?\}\})", template)

    def block(i, scope, stop=("end",)):
        out = []
        while i < len(tokens):
            token = tokens[i]
            if not token.startswith("{{"):
                out.append(token)
                i += 1
                continue
            action = token[2:-2].strip()
            assert not token.startswith("{{-") and not token.endswith("-}}"), token
            if action in stop or action.startswith("else"):
                return "".join(out), i
            if action == "range .Messages":
                start = i + 1
                for message in messages:
                    text, i = block(start, message)
                    out.append(text)
                if not messages:
                    _, i = block(start, {})
                i += 1
            elif action.startswith("if "):
                i, taken = i, False
                while True:
                    condition = tokens[i][2:-2].strip().removeprefix("else").strip().removeprefix("if").strip()
                    match = re.fullmatch(r'eq \.Role "(\w+)"', condition)
                    assert match, condition
                    text, i = block(i + 1, scope)
                    if not taken and scope.get("role") == match.group(1):
                        out.append(text)
                        taken = True
                    if tokens[i][2:-2].strip() == "end":
                        break
                i += 1
            elif action == ".Content":
                out.append(scope["content"])
                i += 1
            else:
                raise AssertionError(f"template action outside the emitted subset: {action}")
        return "".join(out), i

    text, _ = block(0, {})
    return text


@pytest.fixture(scope="module")
def embedded_tokenizer():
    from transformers import AutoTokenizer

    from studio import models

    return AutoTokenizer.from_pretrained(models.resolve("embedded").path)


@pytest.mark.parametrize("system", [None, "Answer in JSON."])
def test_modelfile_template_renders_a_turn_as_the_chat_template_does(embedded_tokenizer, system):
    from studio.export import ollama_modelfile

    modelfile = parse_modelfile(ollama_modelfile(embedded_tokenizer, "model-q4_k_m.gguf", system))
    assert modelfile["FROM"] == "./model-q4_k_m.gguf"
    assert ("stop", embedded_tokenizer.eos_token) in modelfile["PARAMETER"]
    assert system is None or modelfile["SYSTEM"] == system
    turns = [
        [{"role": "user", "content": "What is 5 times 6?"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who wrote\nHamlet?"}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": '{"answer": "hello"}'}, {"role": "user", "content": "And 2+2?"}],
    ]
    for messages in turns:
        expected = embedded_tokenizer.apply_chat_template(
            ([{"role": "system", "content": system}] if system and messages[0]["role"] != "system" else []) + messages,
            add_generation_prompt=True, tokenize=False)
        assert render_go_template(modelfile["TEMPLATE"], messages, modelfile.get("SYSTEM")) == expected


def test_a_template_that_does_more_than_wrap_messages_is_refused(embedded_tokenizer):
    from studio.export import ollama_modelfile

    tokenizer = copy.deepcopy(embedded_tokenizer)
    tokenizer.chat_template = ("{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content | upper }}\n{% endfor %}"
                               "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    with pytest.raises(StudioError, match="--ollama: the chat template does more than wrap"):
        ollama_modelfile(tokenizer, "model-q4_k_m.gguf")


def test_pre_tokenizer_is_named_as_llama_cpp_names_it(embedded_tokenizer):
    from transformers import AutoTokenizer

    from studio.export import pre_tokenizer_name

    assert pre_tokenizer_name(embedded_tokenizer) == "smollm"
    other = AutoTokenizer.from_pretrained(models_path(), use_fast=True)
    other.backend_tokenizer.pre_tokenizer = __import__("tokenizers").pre_tokenizers.Whitespace()
    with pytest.raises(StudioError, match="pre-tokenizer"):
        pre_tokenizer_name(other)


def models_path():
    from studio import models

    return models.resolve("embedded").path


def test_bad_quant_arch_and_push_are_one_line_each(tmp_path, monkeypatch):
    from studio.export import check_gguf_architecture, check_push, check_quants

    assert check_quants(["Q4_K_M", "f16"]) == ("q4_k_m", "f16") and check_quants([]) == ("q4_k_m",)
    with pytest.raises(StudioError, match="--quant: unknown GGUF type 'q3_k_s'"):
        check_quants(["q3_k_s"])
    assert check_gguf_architecture({"model_type": "qwen2"}) == "qwen2"
    with pytest.raises(StudioError, match="supports llama and qwen2 models; this one is 'gemma2'"):
        check_gguf_architecture({"model_type": "gemma2"})
    with pytest.raises(StudioError, match="not a Hub repo id"):
        check_push("not a repo")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(StudioError, match="needs a Hugging Face token; none is set"):
        check_push("me/my-model")
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 30)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(StudioError, match="HF_HUB_OFFLINE=1, so nothing was exported"):
        check_push("me/my-model")


def test_a_run_without_weights_gets_one_line_and_no_folder(studio_home, tmp_path, capsys):
    from studio.__main__ import main
    from studio.jobs import registry

    registry.create("r-noweights", name="broken", method="lora", model="embedded", dataset="d")
    registry.finish("r-noweights", "failed", "crashed before saving")
    out = tmp_path / "export"
    assert main(["export", "r-noweights", "--format", "gguf", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run r-noweights has no trained weights to export (status: failed)" in err[0] and "Traceback" not in err[0]
    assert not out.exists()


def test_llama_cpp_is_installed_on_first_need_with_a_message_or_one_line(tmp_path, monkeypatch):
    import sys

    from studio import export

    requirements = tmp_path / "requirements-llama.txt"
    requirements.write_text("./no-such-llama-cpp-source-folder\n")  # pip fails at once, offline
    monkeypatch.setattr(export, "LLAMA_REQUIREMENTS", requirements)
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if not installed: importing it raises ImportError
    messages = []
    with pytest.raises(StudioError, match="could not install llama-cpp-python for the GGUF export") as caught:
        export.ensure_llama_cpp(lambda fraction, message: messages.append(message))
    assert messages == [f"installing llama-cpp-python: builds llama.cpp once, about {export.LLAMA_BUILD_MINUTES} min on 2 cores"]
    assert "\n" not in str(caught.value) and "make llama-cpp" in str(caught.value)


def test_model_card_reads_the_run_config_typed(tmp_path):
    """The card shows config.yaml as written and the manifest of the run's data (read through
    RunConfig.of_run); without a config, of the registry's dataset path."""
    from types import SimpleNamespace

    from studio.export import model_card

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(f"# as saved\nmethod: lora\ndata: {DEMO_DATA}\nlearning_rate: 0.001\n")
    record = SimpleNamespace(run_dir=str(run_dir), name="card-run", method="lora", id="r-card", status="completed",
                             dataset="registry-copy.jsonl", final_metrics={"train_loss": 1.0})
    card = str(model_card(record, "adapter", {"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "out": str(tmp_path / "out")}))
    manifest = dataset_manifest(str(DEMO_DATA))
    assert "# as saved" in card and manifest["sha256"] in card and "registry-copy.jsonl" not in card
    (run_dir / "config.yaml").unlink()  # no config: the registry's dataset path
    assert "registry-copy.jsonl" in str(model_card(record, "adapter", {"base_model": "b/m", "out": str(tmp_path / "out")}))
