"""Paired statistics for base-vs-tuned comparisons: how sure are we that the tune changed anything?

- `paired_bootstrap`: a seeded bootstrap over examples. Both sides are resampled with the SAME
  indices (the pairing), so the CI is of the difference on the same inputs. The statistic is
  computed on the resampled rows, which lets ratio metrics (token-weighted loss: sum of losses over
  sum of tokens; corpus BLEU: summed n-gram counts) be bootstrapped exactly as they are computed.
- `verdict`: "better"/"worse" only when the 95% CI of the difference excludes 0, and never on fewer
  than MIN_PAIRS examples (a bootstrap of 1-5 examples gives intervals that look narrow and mean little).
- `wilson`: the Wilson score interval of a proportion (win rates, pass rates).
- `sign_test` / `mcnemar_exact`: the exact two-sided binomial test at p = 1/2. scipy is not a
  requirement of the studio, and for p = 1/2 the exact test is a short sum of binomial terms, so it
  is written here (same definition as scipy.stats.binomtest(k, n, 0.5).pvalue).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0
ALPHA = 0.05

BETTER, WORSE, UNCLEAR, NOT_APPLICABLE = "better", "worse", "no clear difference", "not applicable"
TOO_FEW = "too few examples"
# Below 6 pairs even "every example moved the same way" is not significant (exact sign test:
# 2 / 2**5 = 0.0625 > 0.05), while a bootstrap of so few rows returns a narrow, even zero-width, CI.
MIN_PAIRS = 6


def column_mean(rows: np.ndarray) -> float:
    return float(rows.mean()) if len(rows) else 0.0


def ratio_of_sums(rows: np.ndarray) -> float:
    """rows[:, 0] summed over rows[:, 1] summed: a token-weighted mean (per-example loss sums and token counts)."""
    total = rows[:, 1].sum()
    return float(rows[:, 0].sum() / total) if total else 0.0


@dataclass
class Paired:
    base: float
    tuned: float
    delta: float
    ci: tuple[float, float]
    n: int

    def to_dict(self) -> dict:
        return {"base": self.base, "tuned": self.tuned, "delta": self.delta, "ci": [self.ci[0], self.ci[1]], "n": self.n}


def paired_bootstrap(
    base: Sequence,
    tuned: Sequence,
    statistic: Callable[[np.ndarray], float] = column_mean,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    confidence: float = CONFIDENCE,
) -> Paired:
    """The statistic on each side, its difference (tuned - base) and a percentile CI of that difference
    from `resamples` paired resamples of the examples. `base[i]` and `tuned[i]` belong to example i
    (a number, or a row of numbers for ratio statistics)."""
    base_rows, tuned_rows = np.asarray(base, dtype=float), np.asarray(tuned, dtype=float)
    if base_rows.shape != tuned_rows.shape:
        raise ValueError(f"paired samples need the same shape, got {base_rows.shape} and {tuned_rows.shape}")
    n = len(base_rows)
    base_value, tuned_value = statistic(base_rows), statistic(tuned_rows)
    delta = tuned_value - base_value
    if n == 0:
        return Paired(base_value, tuned_value, delta, (0.0, 0.0), 0)
    rng = np.random.default_rng(seed)
    deltas = np.empty(resamples)
    for index in range(resamples):
        pick = rng.integers(0, n, n)
        deltas[index] = statistic(tuned_rows[pick]) - statistic(base_rows[pick])
    tail = (1 - confidence) / 2
    low, high = np.quantile(deltas, [tail, 1 - tail])
    # quantile interpolation can leave a constant difference a hair off itself; keep the point inside
    return Paired(base_value, tuned_value, delta, (float(min(low, delta)), float(max(high, delta))), n)


def verdict(paired: Paired, *, lower_is_better: bool = False) -> str:
    """"better"/"worse" only when the CI of the difference excludes 0 on at least MIN_PAIRS examples
    ("too few examples" below that); a metric at 0 on both sides says nothing."""
    if paired.base == 0 and paired.tuned == 0:
        return NOT_APPLICABLE
    low, high = paired.ci
    if low <= 0 <= high:
        return UNCLEAR
    if paired.n < MIN_PAIRS:
        return TOO_FEW  # the interval excludes 0, but on too few examples to claim a difference
    improved = (high < 0) if lower_is_better else (low > 0)
    return BETTER if improved else WORSE


def wilson(successes: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of successes/total (95% by default); (0, 1) when there is no data."""
    if total <= 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def sign_test(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n trials at p = 1/2: the probability of an outcome
    at most as likely as k. For p = 1/2 the binomial is symmetric, so that is 2 * P(X <= min(k, n-k)),
    capped at 1."""
    if n <= 0:
        return 1.0
    low = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(low + 1)) / 2**n
    return min(1.0, 2 * tail)


def mcnemar_exact(lost: int, gained: int) -> float:
    """Exact McNemar test on paired pass/fail outcomes: only the discordant pairs count (items the tune
    lost, items it gained); under no change each is equally likely, so it is a sign test on them."""
    return sign_test(lost, lost + gained)


def rate(successes: int, total: int) -> dict:
    """A proportion with its Wilson interval, for tables: {k, n, rate, ci}."""
    low, high = wilson(successes, total)
    return {"k": successes, "n": total, "rate": successes / total if total else 0.0, "ci": [low, high]}


def win_rates(wins_a: int, wins_b: int, ties: int) -> dict:
    """Blind A/B or suite tallies: each share with a Wilson interval over all comparisons (ties shown),
    and a sign test on the decided ones."""
    total = wins_a + wins_b + ties
    p = sign_test(wins_a, wins_a + wins_b)
    leader = "a" if wins_a > wins_b else "b" if wins_b > wins_a else None
    return {"a": rate(wins_a, total), "b": rate(wins_b, total), "ties": rate(ties, total), "total": total,
            "p_value": p, "preferred": leader if leader and p < ALPHA else None}


def format_ci(ci: Sequence[float], digits: int = 2, n: int | None = None) -> str:
    """"[lo, hi]"; no interval at all below MIN_PAIRS examples (`n`), where it would not mean what it seems to."""
    if n is not None and n < MIN_PAIRS:
        return f"(no CI: n={n} < {MIN_PAIRS})"
    return f"[{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]"
