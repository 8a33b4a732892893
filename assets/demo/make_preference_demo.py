"""Writes the preference / prompt-only demo files (written by this project).

- preference_pairs.jsonl: prompt / chosen / rejected. The chosen answer is short and helpful, the
  rejected one brushes the user off. Easy on purpose, so DPO and the reward model visibly learn
  within a few steps on a CPU.
- preference_heldout.jsonl: pairs on other questions, for checking a reward model.
- prompts.jsonl: prompt-only rows for PPO/RLOO and Constitutional AI.

Regenerate with `python assets/demo/make_preference_demo.py`.
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from make_demo_dataset import TRAIN  # noqa: E402  (the same questions as the SFT demo)

BRUSH_OFFS = [
    "Figure it out yourself.",
    "I can't be bothered with that.",
    "Not my problem. Look it up.",
    "Why would I tell you?",
    "Ask someone else.",
    "That question is boring.",
]


def pairs(rows, offset=0):
    for index, (_topic, question, answer) in enumerate(rows):
        yield {
            "prompt": question,
            "chosen": f"{answer}. Happy to help!",
            "rejected": BRUSH_OFFS[(index + offset) % len(BRUSH_OFFS)],
        }


def main() -> None:
    train, heldout = TRAIN[:48], TRAIN[48:64]
    write(HERE / "preference_pairs.jsonl", pairs(train))
    write(HERE / "preference_heldout.jsonl", pairs(heldout, offset=3))
    write(HERE / "prompts.jsonl", ({"prompt": q} for _t, q, _a in TRAIN[64:88]))


def write(path: Path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
