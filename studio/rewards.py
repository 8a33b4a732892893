"""Verifiable reward functions for GRPO, composed from a list of specs (YAML key `rewards`).

    rewards:
      - {type: json_valid, weight: 1.0, schema: {type: object, required: [answer]}}
      - {type: regex, pattern: '^\\s*\\{.*"answer"', weight: 0.5}

Each spec has a `type` (one of REWARD_TYPES), an optional `weight` (default 1.0) and `name`
(default: the type, numbered when repeated; it names the plotted series `rewards/<name>/mean`),
plus the type's own keys. `validate_rewards` checks a list before any model loads and names the
reward's position (`rewards[2] (regex): ...`). `build_reward_funcs` turns the list into callables
with TRL's reward signature `f(prompts, completions, **columns) -> list[float | None]`; `None`
means "not applicable" (e.g. `exact` on a row without a reference), which TRL leaves out of the mean.

A function that raises gives 0 for the whole step, and its error (type, message, function name) is
reported once per function through `on_error`, so a broken user file never stops the run.
This module imports neither torch nor gradio: the UI validates configs with it.
"""

from __future__ import annotations

import ast
import json
import math
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from .errors import StudioError

# type -> (help, {key: help}); the keys each type accepts besides type/weight/name
REWARD_TYPES: dict[str, tuple[str, dict[str, str]]] = {
    "regex": ("1 when the completion matches `pattern` (Python regex, DOTALL), else 0.", {
        "pattern": "the regular expression (required)",
        "match": "search (anywhere, default) or full (the whole completion, outer whitespace ignored)",
    }),
    "json_valid": ("1 when the whole completion parses as JSON (and matches `schema` when given), else 0.", {
        "schema": "optional JSON Schema: a mapping, or the path of a .json file holding one",
    }),
    "exact": ("1 when the completion equals the reference answer after normalising case, spaces and end punctuation.", {}),
    "numeric": ("1 when the completion's final answer equals the reference's: the one after `####`, in `\\boxed{}`, or after "
                "\"answer is\"/\"Answer:\", else the last number (commas, units, currency, 1/2 = 0.5, 50% = 0.5 understood).", {
        "tolerance": "relative tolerance, e.g. 0.01 for 1% (default 0: equal after normalisation)",
    }),
    "length": ("1 when the completion's length lies within [min, max]; below min it falls linearly to 0 at length 0, above max to 0 at 2 x max.", {
        "min": "shortest length that scores 1 (default 0)",
        "max": "longest length that scores 1 (required)",
        "unit": "chars (default) or words",
    }),
    "reward_model": ("The score of a trained reward model (a run of method `reward`) on prompt + completion.", {
        "run": "the reward run's id or folder (required)",
    }),
    "python": ("Your file's `def reward(prompt, completion, reference) -> float` (runs code in the training process).", {
        "file": "path of the .py file (required)",
    }),
}
COMMON_KEYS = ("type", "weight", "name")
NEEDS_REFERENCE = ("exact", "numeric")


def describe_types() -> str:
    """One line per type with its keys (for --help-config and the UI)."""
    lines = []
    for kind, (text, keys) in REWARD_TYPES.items():
        extra = "; ".join(f"{k}: {v}" for k, v in keys.items())
        lines.append(f"{kind}: {text}" + (f" Keys: {extra}." if extra else ""))
    return "\n".join(lines)


# ---------------------------------------------------------------- validation


def _where(index: int, spec: Any) -> str:
    kind = spec.get("type") if isinstance(spec, dict) else None
    return f"rewards[{index}]" + (f" ({kind})" if kind else "")


def reward_names(specs: list[dict]) -> list[str]:
    """Unique display names: the given `name`, else the type, numbered from the second of a kind."""
    names, counts = [], {}
    for spec in specs:
        base = str(spec.get("name") or spec["type"])
        counts[base] = counts.get(base, 0) + 1
        names.append(base if counts[base] == 1 else f"{base}_{counts[base]}")
    return names


def load_schema(schema: Any, base: Path | None = None) -> dict:
    """A schema given inline (mapping) or as the path of a JSON file."""
    if isinstance(schema, dict):
        return schema
    if isinstance(schema, str):
        path = Path(schema).expanduser()
        if base is not None and not path.is_absolute() and not path.exists():
            path = base / path
        if not path.is_file():
            raise ValueError(f"schema file not found: {schema}")
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"schema file {schema} is not valid JSON ({err})") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"schema file {schema} must hold a JSON object")
        return loaded
    raise ValueError(f"schema must be a mapping or a .json file path, got {type(schema).__name__}")


def _check_python_file(file: str) -> None:
    """The file exists, parses, and defines reward(prompt, completion, reference): checked without running it."""
    path = Path(file).expanduser()
    if not path.is_file():
        raise ValueError(f"file not found: {file}")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError) as err:
        line = getattr(err, "lineno", None)
        raise ValueError(f"{file}{f' line {line}' if line else ''} is not valid Python ({getattr(err, 'msg', err)})") from None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "reward":
            args = node.args
            positional = len(args.posonlyargs) + len(args.args)
            if positional < 3 and args.vararg is None:
                raise ValueError(f"{file} line {node.lineno}: reward() must take (prompt, completion, reference), it takes {positional} argument(s)")
            return
    raise ValueError(f"{file} defines no top-level `def reward(prompt, completion, reference)`")


def validate_rewards(specs: Any, *, field: str = "rewards", where: str | None = None) -> list[dict]:
    """Check a rewards list before training; raise a one-line StudioError naming the reward's position."""
    if not isinstance(specs, list):
        raise StudioError(f"{field}: expected a list of rewards like [{{type: json_valid}}, {{type: regex, pattern: ...}}], got {type(specs).__name__}.", where=where)
    for index, spec in enumerate(specs):
        position = _where(index, spec)

        def bad(message: str, hint: str = "") -> None:
            raise StudioError(f"{field}: {position}: {message}", where=where, hint=hint or None)

        if not isinstance(spec, dict):
            bad(f"expected a mapping with a `type`, got {spec!r}.")
        kind = spec.get("type")
        if kind not in REWARD_TYPES:
            bad(f"unknown type {kind!r}; choose one of {', '.join(REWARD_TYPES)}.")
        allowed = set(COMMON_KEYS) | set(REWARD_TYPES[kind][1])
        unknown = sorted(set(spec) - allowed)
        if unknown:
            bad(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(str, unknown))}; {kind} takes {', '.join(sorted(allowed))}.")
        weight = spec.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
            bad(f"weight must be a number, got {weight!r}.")
        if kind == "regex":
            pattern = spec.get("pattern")
            if not isinstance(pattern, str) or not pattern:
                bad("needs a `pattern` (a regular expression).")
            try:
                re.compile(pattern, re.DOTALL)
            except re.error as err:
                bad(f"pattern {pattern!r} does not compile: {err}.", "Fix the regular expression (Python syntax); quote it in YAML with single quotes.")
            if spec.get("match", "search") not in ("search", "full"):
                bad(f"match must be search or full, got {spec.get('match')!r}.")
        elif kind == "json_valid" and spec.get("schema") not in (None, ""):
            try:
                schema = load_schema(spec["schema"])
            except ValueError as err:
                bad(f"{err}.")
            import jsonschema

            try:
                jsonschema.validators.validator_for(schema).check_schema(schema)
            except jsonschema.SchemaError as err:
                at = "/".join(str(p) for p in err.path) or "(top)"
                bad(f"schema is not valid JSON Schema at {at}: {err.message}.", "See https://json-schema.org for the keywords (type, properties, required, ...).")
        elif kind == "numeric":
            tolerance = spec.get("tolerance", 0)
            if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
                bad(f"tolerance must be a number >= 0, got {tolerance!r}.")
        elif kind == "length":
            low, high = spec.get("min", 0), spec.get("max")
            for key, value in (("min", low), ("max", high)):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    bad(f"`{key}` must be a number >= 0, got {value!r}." if value is not None else "needs `max` (the longest length that scores 1).")
            if low > high:
                bad(f"min ({low}) is above max ({high}).")
            if spec.get("unit", "chars") not in ("chars", "words"):
                bad(f"unit must be chars or words, got {spec.get('unit')!r}.")
        elif kind == "reward_model":
            if not str(spec.get("run") or "").strip():
                bad("needs `run`: the id or folder of a completed `method: reward` run.")
        elif kind == "python":
            if not str(spec.get("file") or "").strip():
                bad("needs `file`: a .py file defining reward(prompt, completion, reference).")
            try:
                _check_python_file(str(spec["file"]))
            except ValueError as err:
                bad(f"{err}.")
    names = reward_names(specs)
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise StudioError(f"{field}: two rewards are named {duplicate!r}; give each a distinct `name`.", where=where)
    return specs


# ---------------------------------------------------------------- the functions (one item each)


def text_of(value: Any) -> str:
    """A completion or prompt as text: a string, or the content of a message list's last message."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        last = value[-1]
        return str(last.get("content", "")) if isinstance(last, dict) else str(last)
    if isinstance(value, dict):
        return str(value.get("content", ""))
    return "" if value is None else str(value)


def normalise(text: str) -> str:
    text = re.sub(r"\s+", " ", str(text).strip().lower())
    return text.strip(" .!?;:,\"'`")


# Characters math-verify does not read as a minus sign (it knows only ASCII '-').
MINUSES = str.maketrans({"\u2212": "-", "\u2012": "-", "\u2013": "-", "\ufe63": "-", "\uff0d": "-"})


@lru_cache(maxsize=4096)  # a reference is parsed once per generation, not once per completion
def final_answer(text: str | None) -> tuple | None:
    """The final answer of a completion or reference answer, parsed by math-verify (Hugging Face's answer
    grader, the one TRL's accuracy_reward uses): `\\boxed{}` and "the answer is"/"Answer:" first, else the
    last number; it reads thousands separators, units, currency, fractions and percentages. None: no answer.
    GSM8K's `#### 72` marker is taken here, as math-verify does not know it (its solutions end with it)."""
    if text is None or not str(text).strip():
        return None
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    text = str(text).translate(MINUSES)
    if "####" in text:
        text = text.rsplit("####", 1)[1].strip().split("\n", 1)[0]
    parsed = parse(text, extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()], parsing_timeout=_timeout())
    return tuple(parsed) or None


def _timeout() -> int | None:
    """math-verify bounds parsing and comparing with signal.alarm, which works only in the main thread."""
    return 5 if threading.current_thread() is threading.main_thread() else None


def _as_float(answer: tuple) -> float | None:
    try:
        value = float(answer[0])
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def regex_score(completion: str, pattern: re.Pattern, full: bool = False) -> float:
    return 1.0 if (pattern.fullmatch(completion.strip()) if full else pattern.search(completion)) else 0.0


def json_score(completion: str, validator=None) -> float:
    try:
        value = json.loads(completion.strip())
    except (json.JSONDecodeError, ValueError):
        return 0.0
    if validator is not None and not validator.is_valid(value):
        return 0.0
    return 1.0


def exact_score(completion: str, reference: str | None) -> float | None:
    if reference is None or not str(reference).strip():
        return None
    return 1.0 if normalise(completion) == normalise(reference) else 0.0


def numeric_score(completion: str, reference: str | None, tolerance: float = 0.0) -> float | None:
    """1 when the final answers are equal (math-verify's comparison: 1/2 = 0.5, 50% = 0.5 = 50 read as a
    percentage) or, with `tolerance` > 0, within that relative tolerance; None when the reference has none."""
    expected = final_answer(reference)
    if expected is None:
        return None
    got = final_answer(completion)
    if got is None:
        return 0.0
    from math_verify import verify

    if verify(list(expected), list(got), timeout_seconds=_timeout()):
        return 1.0
    if tolerance > 0:
        want, have = _as_float(expected), _as_float(got)
        if want is not None and have is not None and math.isclose(have, want, rel_tol=tolerance):
            return 1.0
    return 0.0


def length_score(completion: str, low: float, high: float, unit: str = "chars") -> float:
    size = len(completion.split()) if unit == "words" else len(completion)
    if low <= size <= high:
        return 1.0
    distance = low - size if size < low else size - high
    band = max(low if size < low else high, 1)
    return max(0.0, 1.0 - distance / band)


def load_python_reward(file: str) -> Callable:
    """Import the user's file (this runs its code) and return its `reward` function."""
    import importlib.util

    path = Path(file).expanduser().resolve()
    spec = importlib.util.spec_from_file_location(f"studio_user_reward_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reward


# ---------------------------------------------------------------- composition


@dataclass
class RewardError:
    name: str
    type: str
    message: str

    def __str__(self) -> str:
        return f"reward '{self.name}' raised {self.type}: {self.message}; it scores 0 for that step (reported once)."


def _per_item(score: Callable[[str, str, str | None], float | None]) -> Callable:
    """Batch form of a per-item scorer over TRL's (prompts, completions, reference=...) call."""

    def batch(prompts, completions, reference=None, **_):
        references = reference if reference is not None else [None] * len(completions)
        return [score(text_of(p), text_of(c), r) for p, c, r in zip(prompts, completions, references)]

    return batch


def scorer(spec: dict, *, reward_model_scorer: Callable | None = None) -> Callable:
    """The batch function of one validated spec (no error handling: see `build_reward_funcs`)."""
    kind = spec["type"]
    if kind == "regex":
        pattern, full = re.compile(spec["pattern"], re.DOTALL), spec.get("match", "search") == "full"
        return _per_item(lambda p, c, r: regex_score(c, pattern, full))
    if kind == "json_valid":
        validator = None
        if spec.get("schema") not in (None, ""):
            import jsonschema

            schema = load_schema(spec["schema"])
            validator = jsonschema.validators.validator_for(schema)(schema)
        return _per_item(lambda p, c, r: json_score(c, validator))
    if kind == "exact":
        return _per_item(lambda p, c, r: exact_score(c, r))
    if kind == "numeric":
        tolerance = float(spec.get("tolerance", 0))
        return _per_item(lambda p, c, r: numeric_score(c, r, tolerance))
    if kind == "length":
        low, high, unit = float(spec.get("min", 0)), float(spec["max"]), spec.get("unit", "chars")
        return _per_item(lambda p, c, r: length_score(c, low, high, unit))
    if kind == "python":
        user = load_python_reward(spec["file"])
        return _per_item(lambda p, c, r: float(user(p, c, r)))
    if kind == "reward_model":
        if reward_model_scorer is None:
            raise StudioError(f"reward '{spec.get('name') or kind}': no reward model loader given.")
        return reward_model_scorer(spec)
    raise StudioError(f"unknown reward type {kind!r}.")


def build_reward_funcs(specs: list[dict], *, on_error: Callable[[RewardError, Any], None] | None = None,
                       reward_model_scorer: Callable | None = None) -> tuple[list[Callable], list[float], list[str]]:
    """(functions, weights, names) for GRPOTrainer(reward_funcs=..., args.reward_weights=...).

    Each function is named after its reward (TRL logs `rewards/<name>/mean`). A function that raises
    returns 0 for every completion of that step; `on_error(error, trainer_state)` is called the first
    time each function fails."""
    names = reward_names(specs)
    funcs = []
    for spec, name in zip(specs, names):
        funcs.append(_guarded(scorer(spec, reward_model_scorer=reward_model_scorer), name, on_error))
    return funcs, [float(spec.get("weight", 1.0)) for spec in specs], names


def _guarded(batch: Callable, name: str, on_error) -> Callable:
    reported: list[bool] = []

    def reward(prompts, completions, **kwargs):
        try:
            values = batch(prompts, completions, **kwargs)
            values = [None if v is None else float(v) for v in values]
            if any(v is not None and not math.isfinite(v) for v in values):
                raise ValueError("returned a non-finite value (NaN or inf)")
            return values
        except Exception as err:  # noqa: BLE001 -- a user's reward must never stop the run
            if not reported:
                reported.append(True)
                if on_error is not None:
                    on_error(RewardError(name, type(err).__name__, str(err)[:300]), kwargs.get("trainer_state"))
            return [0.0] * len(completions)

    reward.__name__ = reward.__qualname__ = name
    return reward


# ---------------------------------------------------------------- the UI's composer (text <-> list)

# The one key the composer's single value box fills for each type (the others keep their defaults).
PRIMARY_KEY = {"regex": "pattern", "json_valid": "schema", "numeric": "tolerance", "length": "max", "reward_model": "run", "python": "file"}


def rewards_to_text(specs: list[dict] | None) -> str:
    """A rewards list as the YAML the Train tab's box shows (one flow mapping per line)."""
    import yaml

    return yaml.safe_dump(list(specs or []), sort_keys=False, default_flow_style=None, allow_unicode=True, width=1000) if specs else ""


def add_reward(text: str, kind: str, value: str = "", weight: float | None = 1.0) -> str:
    """The composer's Add: the rewards in `text` plus one of `kind`, its main key set from `value`;
    the new list is validated (a bad regex or schema is refused with its position)."""
    import yaml

    try:
        specs = yaml.safe_load(text or "") or []
    except yaml.YAMLError as err:
        raise StudioError(f"rewards: the list above is not valid YAML ({getattr(err, 'problem', err)}).", hint="Fix or clear it, then add again.") from None
    if not isinstance(specs, list):
        raise StudioError("rewards: the box must hold a YAML list (lines starting with `- `).", hint="Clear it, then add again.")
    spec: dict = {"type": kind, "weight": 1.0 if weight in (None, "") else float(weight)}
    value = str(value or "").strip()
    key = PRIMARY_KEY.get(kind)
    if value and key is None:
        raise StudioError(f"rewards: {kind} takes no value (it compares with the reference answer); leave the value empty.")
    if value:
        if key in ("tolerance", "max"):
            try:
                spec[key] = float(value) if "." in value or "e" in value.lower() else int(value)
            except ValueError:
                raise StudioError(f"rewards: {kind} needs a number for `{key}`, got {value!r}.") from None
        elif key == "schema" and value.startswith("{"):
            try:
                spec[key] = json.loads(value)
            except json.JSONDecodeError as err:
                raise StudioError(f"rewards: the schema is not valid JSON ({err.msg}, column {err.colno}).") from None
        else:
            spec[key] = value
    validate_rewards(specs + [spec])
    return rewards_to_text(specs + [spec])


def runs_code(specs: Any) -> bool:
    """Whether a rewards list (or its YAML text) has a `python` reward, which runs the user's code."""
    if isinstance(specs, str):
        return bool(re.search(r"type\s*:\s*['\"]?python\b", specs))
    return any(isinstance(s, dict) and s.get("type") == "python" for s in specs or [])
