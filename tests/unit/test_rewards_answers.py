"""The `numeric` reward's final-answer extraction (studio.rewards.final_answer, math-verify) on GSM8K- and
MATH-shaped rows as those datasets publish them, including the cases the last-number rule got wrong."""

from __future__ import annotations

import json
import threading

import pytest

from studio.config import RunConfig
from studio.data import load_dataset_file
from studio.errors import StudioError
from studio.methods.grpo import read_rows, reference_notes
from studio.rewards import build_reward_funcs, final_answer, numeric_score
from tests.conftest import REPO

PUBLIC = REPO / "tests" / "data" / "public"
GSM8K = PUBLIC / "gsm8k_excerpt.jsonl"  # openai/gsm8k rows: {"question", "answer"}, the answer's last line "#### N"
MATH = PUBLIC / "math_excerpt.jsonl"  # hendrycks MATH rows: {"problem", "level", "type", "solution"}, the answer in \boxed{}


def numeric(completions: list[str], reference: str, **spec) -> list:
    """TRL's call of the reward: conversational completions and the dataset's `reference` column."""
    (func,), _, _ = build_reward_funcs([{"type": "numeric", **spec}])
    return func([[{"role": "user", "content": "q"}]] * len(completions), [[{"role": "assistant", "content": c}] for c in completions],
                reference=[reference] * len(completions), trainer_state=None)


def gsm8k_rows() -> list[dict]:
    return read_rows(GSM8K, load_dataset_file(GSM8K, mapping="question=instruction,answer=output"))  # the answer becomes the reference


def test_gsm8k_reference_is_the_number_after_the_marker_not_an_intermediate_one():
    natalia, weng, janet, josh = gsm8k_rows()
    assert natalia["reference"].endswith("#### 72") and "<<48/2=24>>24" in natalia["reference"]
    completions = ["In May she sold 48/2 = 24 clips, so 48 + 24 = 72 altogether.",
                   "The answer is 72, with 48 in April and 24 in May.",  # the last number, 24, said 0 before
                   "48 + 24 = 72\n#### 72",
                   r"So she sold $\boxed{72}$ clips; that is 24 more than in May... no: 48 + 24.",  # \boxed wins over the trailing 24
                   "She sold 24 clips in May. #### 24",
                   "I cannot tell."]
    assert numeric(completions, natalia["reference"]) == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    assert numeric(["Working 50 minutes she earned 0.2 x 50 = $10.", "She earned $10.00.", "0.2 per minute"], weng["reference"]) == [1.0, 1.0, 0.0]
    assert numeric(["She sells 9 eggs for $2 each: $18 a day.", "Answer: 18 dollars", "Answer: $18 (9 eggs)"], janet["reference"]) == [1.0, 1.0, 1.0]
    assert numeric(["He made a profit of $70,000.", "The profit is 70,000 dollars.", "The answer is 130,000"], josh["reference"]) == [1.0, 1.0, 0.0]
    cfg = RunConfig.from_dict({"method": "grpo", "data": str(GSM8K), "rewards": [{"type": "numeric"}]})
    assert reference_notes(cfg, gsm8k_rows()) == []  # every GSM8K reference has its answer


def test_math_reference_is_the_boxed_answer():
    rows = read_rows(MATH, load_dataset_file(MATH, mapping="problem=instruction,solution=output"))
    asymptotes, pentagon = (r["reference"] for r in rows)
    assert final_answer(asymptotes)[0] == 2 and final_answer(pentagon)[0] == 135  # not -3, not 135/2
    assert numeric([r"The denominator is zero at $x=2$ and $x=-3$, so there are $\boxed{2}$ vertical asymptotes.",
                    "There are two: x = 2 and x = -3."], asymptotes) == [1.0, 0.0]
    assert numeric([r"$8x = 540$, so $x = 67.5$ and $2x = \boxed{135}$.", "x = 135/2"], pentagon) == [1.0, 0.0]
    half = r"So the maximum difference in the lengths of the radii is $\boxed{\frac{1}{2}}$."
    assert numeric(["R - r <= 1/2, so the answer is 0.5", r"\boxed{\dfrac12}", "1/2", "2"], half) == [1.0, 1.0, 1.0, 0.0]  # "2": the last number before


@pytest.mark.parametrize("completion, reference, expected", [
    ("The area is 150 cm^2.", "150", 1.0),  # the exponent's 2 was the last number
    ("The total is 3,600 seconds.", "3600", 1.0),
    ("It costs $1,250.00.", "#### 1250", 1.0),
    ("The temperature fell to \u22123 degrees.", "-3", 1.0),  # unicode minus sign
    ("x = -3", "\u22123", 1.0),
    ("The answer is 1/2", "0.5", 1.0),
    ("Answer: 0.25", r"\boxed{\frac{1}{4}}", 1.0),
    ("So 50% of them.", "0.5", 1.0),
    ("It grew by 25%.", "#### 25", 1.0),
    ("The answer is 3.", "-3", 0.0),
    ("Answer: 72", "#### 27", 0.0),
    ("I do not know.", "#### 5", 0.0),
])
def test_normalised_answers(completion, reference, expected):
    assert numeric_score(completion, reference) == expected


def test_tolerance_is_relative_and_off_by_default():
    assert numeric(["about 99", "3.1", "0.001"], "100") == [0.0, 0.0, 0.0]
    assert numeric(["about 99", "98", "101.5"], "#### 100", tolerance=0.01) == [1.0, 0.0, 0.0]
    assert numeric(["3.1", "3.2"], "3.14", tolerance=0.015) == [1.0, 0.0]  # 1.3% and 1.9% off
    assert numeric(["0.001"], "0", tolerance=0.5) == [0.0]  # relative: 0 matches only 0
    with pytest.raises(StudioError, match=r"rewards\[0\] \(numeric\): tolerance must be a number >= 0"):
        RunConfig.from_dict({"method": "grpo", "data": str(GSM8K), "rewards": [{"type": "numeric", "tolerance": -0.1}]})


def test_rows_without_an_answer_are_not_scored():
    assert numeric(["42"], "Telegram") == [None]  # TRL leaves the row out of the reward's mean
    assert final_answer("") is None and final_answer(None) is None


def test_parsing_works_off_the_main_thread():
    # math-verify's timeout uses signal.alarm, which only the main thread may set
    got = []
    worker = threading.Thread(target=lambda: got.append(numeric_score("Answer: 1,250", "#### 1250")))
    worker.start()
    worker.join()
    assert got == [1.0]


def test_public_rows_are_as_published():
    first = json.loads(GSM8K.read_text().splitlines()[0])
    assert set(first) == {"question", "answer"} and first["answer"].rsplit("\n", 1)[1] == "#### 72"
    assert set(json.loads(MATH.read_text().splitlines()[0])) == {"problem", "level", "type", "solution"}
