"""Export pieces that need no model: safe output folders, llama.cpp's q/k permutation, zip, manifest."""

from __future__ import annotations

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
