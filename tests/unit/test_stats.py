"""Paired statistics on known cases: the verdicts a sceptic would check by hand."""

from __future__ import annotations

import math

import pytest

from studio import stats


def test_identical_outputs_have_a_ci_around_zero_and_no_clear_difference():
    scores = [0.2, 0.9, 0.4, 0.0, 1.0, 0.3, 0.7, 0.5]
    paired = stats.paired_bootstrap(scores, list(scores))
    assert paired.delta == 0 and paired.ci[0] <= 0 <= paired.ci[1]
    assert stats.verdict(paired) == stats.UNCLEAR
    assert paired.n == 8


def test_a_clear_win_is_better_and_a_clear_loss_is_worse():
    base = [0.0] * 30 + [1.0] * 10
    tuned = [1.0] * 35 + [0.0] * 5
    paired = stats.paired_bootstrap(base, tuned)
    assert paired.delta == pytest.approx(0.625) and paired.ci[0] > 0
    assert stats.verdict(paired) == stats.BETTER
    assert stats.verdict(stats.paired_bootstrap(tuned, base)) == stats.WORSE


def test_lower_is_better_flips_the_direction():
    base = [[3.0, 1], [2.5, 1], [2.8, 1], [3.1, 1]] * 5  # (loss sum, tokens) per example
    tuned = [[1.0, 1], [1.2, 1], [0.9, 1], [1.1, 1]] * 5
    paired = stats.paired_bootstrap(base, tuned, stats.ratio_of_sums)
    assert paired.ci[1] < 0
    assert stats.verdict(paired, lower_is_better=True) == stats.BETTER
    assert stats.verdict(paired, lower_is_better=False) == stats.WORSE


def test_a_small_noisy_difference_is_not_called():
    base = [1, 0, 1, 0, 1, 0, 1, 0]
    tuned = [1, 0, 1, 0, 1, 0, 1, 1]  # one item flipped out of 8
    assert stats.verdict(stats.paired_bootstrap(base, tuned)) == stats.UNCLEAR


def test_zero_on_both_sides_is_not_applicable():
    assert stats.verdict(stats.paired_bootstrap([0.0] * 5, [0.0] * 5)) == stats.NOT_APPLICABLE


def test_the_bootstrap_is_seeded():
    base, tuned = [0.1, 0.5, 0.3, 0.9, 0.2], [0.4, 0.6, 0.2, 0.9, 0.8]
    assert stats.paired_bootstrap(base, tuned).ci == stats.paired_bootstrap(base, tuned).ci


def test_ratio_of_sums_weights_by_tokens():
    import numpy as np

    assert stats.ratio_of_sums(np.array([[10.0, 10], [1.0, 1]])) == pytest.approx(1.0)


def test_wilson_matches_the_textbook_values():
    low, high = stats.wilson(8, 10)  # Wilson 95% for 8/10: 0.4902 .. 0.9433
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert stats.wilson(0, 0) == (0.0, 1.0)
    assert stats.wilson(0, 20)[0] == 0.0 and stats.wilson(20, 20)[1] == 1.0


def test_sign_test_exact_values():
    # 0 of 5: 2 * (1/32) = 0.0625; 0 of 6: 2/64 = 0.03125; 5 of 10: 1
    assert stats.sign_test(0, 5) == pytest.approx(0.0625)
    assert stats.sign_test(6, 6) == pytest.approx(0.03125)
    assert stats.sign_test(5, 10) == 1.0
    assert stats.sign_test(2, 12) == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert stats.mcnemar_exact(0, 0) == 1.0
    assert stats.mcnemar_exact(1, 0) == 1.0  # one flipped item is never significant


def test_sign_test_agrees_with_scipy_where_it_is_installed():
    binomtest = pytest.importorskip("scipy.stats").binomtest
    for k, n in [(0, 7), (3, 11), (9, 20), (15, 16), (40, 100)]:
        assert stats.sign_test(k, n) == pytest.approx(binomtest(k, n, 0.5).pvalue, rel=1e-9)


def test_win_rates_show_ties_and_call_a_winner_only_when_significant():
    close = stats.win_rates(6, 4, 3)
    assert close["ties"]["k"] == 3 and close["total"] == 13 and close["preferred"] is None
    clear = stats.win_rates(12, 1, 2)
    assert clear["preferred"] == "a" and clear["p_value"] < 0.05
    assert clear["a"]["rate"] == pytest.approx(12 / 15)
    assert not math.isnan(clear["a"]["ci"][0])


def test_too_few_examples_get_no_verdict_and_no_interval():
    """One held-out example gave a zero-width CI and a 'better' verdict in a browser pass; below
    MIN_PAIRS even a unanimous change is not significant (sign test 2/2**5 > 0.05)."""
    one = stats.paired_bootstrap([2.0], [1.4])
    assert one.ci[0] == one.ci[1]  # what the bootstrap gives: a narrow interval that means nothing
    assert stats.verdict(one, lower_is_better=True) == stats.TOO_FEW
    assert stats.format_ci(one.ci, 3, one.n) == "(no CI: n=1 < 6)"
    five = stats.paired_bootstrap([2.0, 2.1, 1.9, 2.2, 2.0], [1.0, 1.1, 0.9, 1.2, 1.0])
    assert stats.verdict(five, lower_is_better=True) == stats.TOO_FEW
    assert stats.sign_test(0, 5) > stats.ALPHA and stats.sign_test(0, stats.MIN_PAIRS) < stats.ALPHA
    six = stats.paired_bootstrap([2.0, 2.1, 1.9, 2.2, 2.0, 2.1], [1.0, 1.1, 0.9, 1.2, 1.0, 1.1])
    assert stats.verdict(six, lower_is_better=True) == stats.BETTER
    assert stats.verdict(stats.paired_bootstrap([0.0], [0.0])) == stats.NOT_APPLICABLE


def test_headline_warns_and_drops_the_interval_below_the_minimum():
    from studio import evaluate

    metric = evaluate.compare_metric("eval_loss", [[2.0, 1.0]], [[1.4, 1.0]])
    text, kind = evaluate.headline({"eval_data": {"examples": 1, "kind": "held-out rows"}, "metrics": {"eval_loss": metric}})
    assert kind == "warn" and "too few" in text and "better" not in text
    assert "CI [" not in text
    assert "(no CI: n=1 < 6)" in evaluate.summary_rows({"metrics": {"eval_loss": metric}})[0][3]
