"""Property-based fuzzing of the dataset and config loaders: any bytes in, a result or one clear
StudioError out; never another exception."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio.config import RunConfig
from studio.data import load_dataset_file
from studio.errors import StudioError

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["instruction", "output", "input", "messages", "role", "content", "prompt", "completion", "chosen", "rejected", "conversations", "from", "value", "text", "label", "x"]), inner, max_size=5),
    max_leaves=12,
)


def check(path) -> None:
    try:
        loaded = load_dataset_file(path)
    except StudioError as err:
        assert "\n" not in str(err)
        return
    assert loaded.conversations or loaded.rows is not None


@FUZZ
@given(st.binary(max_size=400), st.sampled_from([".jsonl", ".json", ".csv", ".txt"]))
def test_random_bytes(tmp_path_factory, content, suffix):
    path = tmp_path_factory.mktemp("fuzz") / f"data{suffix}"
    path.write_bytes(content)
    check(path)


@FUZZ
@given(st.lists(json_values, min_size=1, max_size=6))
def test_random_json_lines(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("fuzz") / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    check(path)


@FUZZ
@given(st.dictionaries(st.sampled_from(list(RunConfig.field_help()) + ["bogus"]), json_values, max_size=6))
def test_random_configs(config):
    try:
        RunConfig.from_dict({"data": "x.jsonl", **config})
    except StudioError as err:
        assert "\n" not in str(err)
