"""KTO: config checks, the data it accepts (and refuses with one line), class weights."""

from __future__ import annotations

import pytest

from studio.config import RunConfig
from studio.errors import StudioError
from studio.methods import MODULES, check_data
from studio.methods.common import read_preference
from studio.methods.kto import class_weights
from tests.conftest import DEMO_DATA, REPO

PUBLIC = REPO / "tests" / "data" / "public"


def test_kto_is_a_method_with_beta_and_needs_two_rows_per_batch():
    assert MODULES["kto"] == "kto"
    RunConfig.from_dict({"method": "kto", "data": "x.jsonl", "per_device_train_batch_size": 2})
    with pytest.raises(StudioError, match="per_device_train_batch_size: KTO estimates its KL term"):
        RunConfig.from_dict({"method": "kto", "data": "x.jsonl", "per_device_train_batch_size": 1})
    with pytest.raises(StudioError, match="dpo_beta"):
        RunConfig.from_dict({"method": "kto", "data": "x.jsonl", "dpo_beta": 0})


def test_kto_takes_labelled_answers_or_pairs_and_refuses_instructions_in_one_line():
    for data in (PUBLIC / "kto_en_demo.json", PUBLIC / "preference_mixed.jsonl"):
        check_data(RunConfig(method="kto", data=str(data)))
    with pytest.raises(StudioError) as err:
        check_data(RunConfig(method="kto", data=str(DEMO_DATA)))
    assert "needs answers labelled desirable or not" in str(err.value) and "\n" not in str(err.value)
    pairs = read_preference(PUBLIC / "preference_mixed.jsonl", "kto", "kto").to_trl("kto")
    assert sum(r["label"] for r in pairs) * 2 == len(pairs)  # each pair: one desirable, one undesirable row


def test_class_weights_balance_unequal_labels():
    rows = [{"label": True}] * 6 + [{"label": False}] * 3
    assert class_weights(rows) == (1.0, 2.0, 6, 3)
    assert class_weights([{"label": True}, {"label": False}]) == (1.0, 1.0, 1, 1)
    assert class_weights([{"label": True}] * 3) == (1.0, 1.0, 3, 0)
