"""Evaluation sees what training trained (issue 14 after 13): the eval loss on tool-call rows scores the
tokens `data render` reports as trained, with the tools schemas in the prompt; an explicit eval file
is checked against the run's training rows and its copies are reported and left out."""

from __future__ import annotations

import html
import json

import pytest

from studio.data.cli import render_row
from tests.conftest import DEMO_DATA, REPO, demo_run_id, run_cli

pytestmark = pytest.mark.integration
PUBLIC = REPO / "tests" / "data" / "public"


def test_eval_loss_on_tool_rows_scores_the_trained_tokens_with_the_tools_in_the_prompt(trained_demo_run, monkeypatch):
    from studio import chat, evaluate
    from studio.config import RunConfig
    from studio.jobs import registry

    home, _ = trained_demo_run
    monkeypatch.setenv("STUDIO_HOME", str(home))
    record = registry.get(demo_run_id(trained_demo_run))
    cfg = RunConfig.of_run(record.run_dir)
    settings = evaluate.run_loss_settings(record)  # what evaluate_run scores with
    assert settings == {"loss_on": cfg.loss_on, "max_length": cfg.max_length, "truncation_side": cfg.truncation_side}
    side = chat.ChatEngine.for_run(record).base_side  # the counts do not depend on the weights: one side is enough
    tokenizer = side.base.tokenizer
    for name in ("glaive_toolcall_demo.json", "openai_tool_calls.jsonl"):
        path = PUBLIC / name
        examples, source = evaluate.eval_examples(record, evaluate.EvalOptions(data=str(path)))
        assert len(examples) >= 3 and source["overlap"]["copies"] == 0 and any(e.get("tools") for e in examples)
        scored = [count for _, count in evaluate.completion_loss(side, examples, settings=settings)]
        multi_turn_gain = 0
        for row, count, example, (ids, labels) in zip(source["rows"], scored, examples, evaluate.loss_inputs(examples, tokenizer, settings)):
            shown = render_row(str(path), row, max_length=cfg.max_length, loss_on=cfg.loss_on, truncation_side=cfg.truncation_side)
            assert count == shown["trained_tokens"], (name, row, count, shown["trained_tokens"])  # 0 where the answer lies past max_length
            if count:
                first = next(i for i, label in enumerate(labels) if label != -100)
                prompt = tokenizer.decode(ids[:first])
                for tool in example.get("tools") or []:
                    assert tool["function"]["name"] in prompt, (name, row, tool["function"]["name"])
                last_reply = render_row(str(path), row, max_length=cfg.max_length, loss_on="last_reply")["trained_tokens"]
                multi_turn_gain += count - last_reply
        assert sum(scored) > 0
        assert multi_turn_gain > 0, name  # the function-call turns are scored too, as all_assistant trains them


def test_an_eval_file_sharing_3_rows_with_the_demo_runs_training_data(trained_demo_run, tmp_path, monkeypatch):
    home, _ = trained_demo_run
    run_id = demo_run_id(trained_demo_run)
    run_dir = home / "runs" / run_id
    trained = json.loads((run_dir / "split.json").read_text())["train"]
    demo_rows = DEMO_DATA.read_text().splitlines()
    fresh = [
        {"instruction": "Name a process by which green plants turn sunlight into chemical energy.", "input": "", "output": '{"topic": "biology", "answer": "Photosynthesis"}'},
        {"instruction": "Which instrument measures atmospheric pressure in a weather station?", "input": "", "output": '{"topic": "physics", "answer": "A barometer"}'},
        {"instruction": "Who composed the opera The Magic Flute in the eighteenth century?", "input": "", "output": '{"topic": "music", "answer": "Mozart"}'},
    ]
    lines = [json.dumps(fresh[0]), demo_rows[trained[3]], json.dumps(fresh[1]), demo_rows[trained[10]], demo_rows[trained[20]], json.dumps(fresh[2])]
    path = tmp_path / "mixed_eval.jsonl"
    path.write_text("\n".join(lines) + "\n")

    result = run_cli("eval", run_id, "--data", str(path), "--json", "--no-probes", "--max-new-tokens", "4", home=home)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    overlap = results["source"]["overlap"]
    assert (overlap["copies"], overlap["rows"], overlap["row_ids"], overlap["dropped"]) == (3, 6, [1, 3, 4], True)
    assert results["source"]["rows"] == [0, 2, 5] and results["source"]["examples"] == 3
    expected = "3 of 6 eval rows are in (or near copies of) this run's training rows"
    assert any(w.startswith(expected) for w in results["warnings"])
    saved = json.loads((run_dir / "eval" / results["report"].split("/")[-2] / "results.json").read_text())
    assert saved["source"]["overlap"] == overlap  # results.json (`source`) holds the check
    page = html.unescape(open(results["report"], encoding="utf-8").read())
    assert expected in page and "Eval loss scores the tokens the run's training trains: loss on all assistant" in page
    assert "3 of 6 eval rows are in (or near copies of) them" in page and "left out of this evaluation" in page

    from studio.evaluate import headline

    assert headline(results)[1] == "warn"  # never a green success

    # the Evaluate tab says it before anything starts, as a warning; unticking the box keeps the rows, still warned
    monkeypatch.setenv("STUDIO_HOME", str(home))
    from components.evaluate_tab import expected_text

    before = expected_text(run_id, str(path), 32, 40, False, "", True)
    assert 'class="studio-status studio-warn"' in before and expected in html.unescape(before) and "3 examples" in before
    kept = expected_text(run_id, str(path), 32, 40, False, "", False)
    assert 'class="studio-status studio-warn"' in kept and "partly measured on training data" in kept and "6 examples" in kept
