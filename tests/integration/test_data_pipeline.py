"""Data curation with the embedded model's real tokenizer: token profile, the trained-token view,
the token-length filter, near-duplicates (datasketch), the CLI, and load -> version -> train."""

import json

import pytest
import yaml

from studio.data import load_dataset_file
from studio.data.clean import CleanOptions, near_duplicate_clusters, plan_clean
from studio.data.profile import profile, token_lengths, tokenizer_for
from studio.data.render import tokens_html, trained_tokens
from studio.data.versions import prepare
from tests.conftest import DEMO_DATA, run_cli, write_yaml


@pytest.fixture(scope="module")
def tokenizer():
    return tokenizer_for("embedded")


def convo(question, answer):
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def test_profile_counts_tokens_through_the_chat_template(tokenizer):
    examples = load_dataset_file(DEMO_DATA).conversations
    median = profile(examples, tokenizer, max_length=None).stats["total"]["p50"]
    result = profile(examples, tokenizer, max_length=median)
    first = examples[0]["messages"]
    total = len(tokenizer.apply_chat_template(first, tokenize=True)["input_ids"])
    prompt = len(tokenizer.apply_chat_template(first[:1], tokenize=True, add_generation_prompt=True)["input_ids"])
    assert result.lengths[0] == (prompt, total - prompt, total)
    over = sum(1 for _, _, t in result.lengths if t > median)
    assert 0 < over < len(examples)
    assert result.stats["truncated"] == over and result.stats["truncated_pct"] == round(100 * over / len(examples), 2)
    assert result.turns == {1: len(examples)}


def test_trained_tokens_are_the_reply_and_its_end_of_turn(tokenizer):
    example = {"messages": [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"}, {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Goodbye."}]}
    last = trained_tokens(example, tokenizer, mode="last_reply")
    assert "".join(t.text for t in last if t.trained) == "Goodbye.<|im_end|>"
    every = trained_tokens(example, tokenizer, mode="all_assistant")
    assert "".join(t.text for t in every if t.trained) == "Hello! How can I help?<|im_end|>Goodbye.<|im_end|>"
    cut = trained_tokens(example, tokenizer, mode="all", max_length=10)
    assert all(t.trained for t in cut) and sum(t.cut for t in cut) == len(cut) - 10
    html = tokens_html(last)
    assert "tok-trained" in html and "tok-context" in html and "&lt;|im_start|&gt;" in html


def test_near_duplicates_and_token_length_filter(tokenizer):
    story = "the quick brown fox jumps over the lazy dog and runs into the quiet green forest at night"
    examples = [convo("Tell me a story", story), convo("Tell me a story!", story + " again"), convo("What is 2+2?", "4"), convo("Write a long essay", "word " * 300)]
    assert near_duplicate_clusters(examples, 0.7) == [[0, 1]]
    totals = [t for _, _, t in token_lengths(examples, tokenizer)]
    plan = plan_clean(examples, CleanOptions(near_dup_threshold=0.7, max_tokens=200), total_tokens=totals)
    assert plan.removed_by_reason == {"near duplicate": 1, "too long": 1}
    assert plan.apply() == [examples[0], examples[2]]


def test_datasets_folder_loads(tmp_path):
    from datasets import Dataset

    Dataset.from_list([{"prompt": "hi", "completion": "hello"}] * 2).save_to_disk(str(tmp_path / "saved"))
    loaded = load_dataset_file(tmp_path / "saved")
    assert loaded.format == "prompt_completion" and len(loaded.conversations) == 2


def test_cli_inspect_json_prepare_and_failure(tmp_path, studio_home):
    result = run_cli("data", "inspect", str(DEMO_DATA), "--json", "--max-length", "45", home=studio_home, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["format"], report["rows"], report["valid_rows"]) == ("alpaca", 112, 112)
    stats = report["token_stats"]
    assert stats["max_length"] == 45 and stats["sampled_rows"] == 112 and not stats["sampled"]
    over = [p for p in report["problems"] if p["kind"] == "over max length"]
    assert len(over) == stats["truncated"] == report["warnings_by_reason"]["over max length"] > 0
    assert all(p["severity"] == "warning" and p["line"] == p["row"] and "> max_length 45" in p["message"] for p in over)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "q", "output": ""}\n{broken\n')
    failed = run_cli("data", "inspect", str(bad), "--no-tokens", home=studio_home, timeout=120)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert failed.stderr.strip().count("\n") == 0 and "no usable rows" in failed.stderr and str(bad) in failed.stderr
    prepared = run_cli("data", "prepare", str(DEMO_DATA), "--name", "demo", "--eval-fraction", "0.2", "--scrub-pii", "--json", home=studio_home, timeout=300)
    assert prepared.returncode == 0, prepared.stderr
    manifest = json.loads(prepared.stdout)
    assert manifest["version"] == "v1" and manifest["filters"][-1] == {"filter": "scrub_pii", "kinds": ["email", "key", "phone"]}
    assert (manifest["counts"]["train"], manifest["counts"]["eval"]) == (90, 22)
    assert (studio_home / "datasets" / "demo" / "v1" / "data.parquet").is_file()


def test_load_version_train_records_the_version(tmp_path, studio_home):
    """Round trip on the embedded model: a saved version trains (2 steps) and the run names it."""
    from studio.jobs import registry
    from studio.jobs.train import execute

    rows = [{"instruction": f"Say the number {i}.", "output": f"{i}"} for i in range(24)]
    source = tmp_path / "numbers.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    version = prepare([source], "numbers", eval_fraction=0.25, seed=1).path
    config = write_yaml(tmp_path / "run.yaml", data=str(version / "data.parquet"), max_steps=2, max_length=64, per_device_train_batch_size=2, save_steps=50, learning_rate=1e-3)
    run_dir = execute(config)
    record = registry.get(run_dir.name)
    assert record.status == "completed" and record.dataset == str(version / "data.parquet")
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["data"].endswith("numbers/v1/data.parquet")
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
