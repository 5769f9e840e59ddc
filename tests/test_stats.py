import itertools
import math

import numpy as np
import pytest
from scipy import stats as st

from sim.experiment.presentation import fit_verdict as verdict
from sim.stats import MONTE_CARLO_DRAWS, chi_square_gof, chi_square_power, cohens_w, grouped_gof


def test_chi_square_by_hand():
    # observed 30/50/20 against 1/3 each of 100: expected 33.33; X2 = (3.33^2 + 16.67^2 + 13.33^2)/33.33 = 14.0
    r = chi_square_gof([30, 50, 20], [1, 1, 1])
    assert r.statistic == pytest.approx(14.0)
    assert r.dof == 2
    assert r.pvalue == pytest.approx(math.exp(-7.0))  # chi2 sf with 2 dof is exp(-x/2)
    assert r.cohens_w == pytest.approx(math.sqrt(14.0 / 100))
    assert r.n == 100


def test_zero_share_cells_are_left_out():
    r = chi_square_gof([50, 50, 0], [0.5, 0.5, 0.0])
    assert r.dof == 1
    assert r.statistic == 0.0


def test_one_cell_is_nothing_to_test():
    r = chi_square_gof([100], [1.0])
    assert (r.statistic, r.pvalue, r.dof) == (0.0, 1.0, 0)
    assert "nothing to test" in verdict(r)


def test_bad_arguments():
    with pytest.raises(ValueError, match="cells"):
        chi_square_gof([1, 2], [1.0])
    with pytest.raises(ValueError, match="positive sum"):
        chi_square_gof([1, 2], [0.0, 0.0])


def test_power_matches_cohens_table():
    # Cohen (1988) table 7.4.6: dof 1, alpha 0.05, w 0.3 needs n = 87 for power 0.80
    assert chi_square_power(0.3, 87, 1) == pytest.approx(0.80, abs=0.01)
    assert chi_square_power(0.0, 1000, 1) == pytest.approx(0.05)


def test_cohens_w_of_a_60_40_split():
    assert cohens_w([0.6, 0.4], [0.5, 0.5]) == pytest.approx(0.2)


def test_verdict_words():
    assert "REJECT" in verdict(chi_square_gof([70, 30], [1, 1]))
    assert "consistent" in verdict(chi_square_gof([51, 49], [1, 1]))
    assert "exact binomial" in verdict(chi_square_gof([3, 1], [1, 1]))
    assert "Monte Carlo" in verdict(chi_square_gof([3, 1, 1], [1, 1, 1]))
    assert "caution" in verdict(chi_square_gof([3.5, 1, 1], [1, 1, 1]))  # not counts: no Monte Carlo


def test_two_cells_with_few_counts_use_the_exact_binomial():
    r = chi_square_gof([4, 0], [0.5, 0.5])
    assert r.method == "exact binomial"
    assert r.pvalue == pytest.approx(0.125)  # P(4-0 or 0-4) = 2/16
    assert chi_square_gof([60, 40], [0.5, 0.5]).method == "chi-square"


def exact_pvalue(observed: list[int], shares: list[float]) -> float:
    """P(Pearson statistic >= observed's) under the multinomial null, by enumerating every outcome."""
    n, p = sum(observed), np.asarray(shares) / sum(shares)

    def pearson(x) -> float:
        return float(((np.asarray(x) - n * p) ** 2 / (n * p)).sum())

    def prob(x) -> float:
        return math.factorial(n) / math.prod(math.factorial(k) for k in x) * float(np.prod(p ** np.asarray(x)))

    outcomes = [x for x in itertools.product(range(n + 1), repeat=len(p)) if sum(x) == n]
    return sum(prob(x) for x in outcomes if pearson(x) >= pearson(observed) - 1e-9)


def test_monte_carlo_pvalue_matches_the_exact_multinomial_tail():
    # few draws over 3 or 4 cells: the chi-square law is off, the Monte Carlo tail is the exact one within its SE
    for observed, shares in [([3, 1, 1], [1, 1, 1]), ([6, 0, 1, 1], [1, 1, 1, 1]), ([5, 2, 0], [0.5, 0.3, 0.2])]:
        r = chi_square_gof(observed, shares)
        exact = exact_pvalue(observed, shares)
        se = math.sqrt(exact * (1 - exact) / MONTE_CARLO_DRAWS)
        assert r.method == "Monte Carlo" and abs(r.pvalue - exact) < 4 * se + 1 / MONTE_CARLO_DRAWS
        assert r.pvalue == chi_square_gof(observed, shares).pvalue  # a function of the data alone
    # and the chi-square law would be wrong there: 4-1-0-0 of 5 gets p = 0.035 from it, exactly 0.0625
    statistic = chi_square_gof([4, 1, 0, 0], [1, 1, 1, 1]).statistic
    assert st.chi2.sf(statistic, 3) < 0.05 < exact_pvalue([4, 1, 0, 0], [1] * 4)


def test_grouped_test_sums_statistics_and_dof_over_groups():
    a = ([30, 50, 20, 0], [1, 1, 1, 0])  # X2 14.0, 2 dof
    b = ([0, 0, 60, 40], [0, 0, 1, 1])  # X2 4.0, 1 dof
    one = ([10, 0, 0, 0], [1, 0, 0, 0])  # one eligible endpoint: 0 dof
    r = grouped_gof([a, b, one])
    assert (r.statistic, r.dof, r.n) == (pytest.approx(18.0), 3, 210)
    assert r.pvalue == pytest.approx(st.chi2.sf(18.0, 3)) and r.method == "chi-square"
    assert r.cohens_w == pytest.approx(math.sqrt(18.0 / 210))
    assert [g.test.dof for g in r.groups] == [2, 1, 0] and [g.members for g in r.groups] == [(0,), (1,), (2,)]
    assert r.groups[1].cells == (2, 3) and r.groups[1].observed == (60.0, 40.0)
    # groups with the same shares are one multinomial: merged, they give the pooled test exactly
    merged = grouped_gof([([30, 20], [1, 1]), ([30, 20], [2, 2])])
    pooled = chi_square_gof([60, 40], [1, 1])
    assert (merged.statistic, merged.dof, merged.pvalue) == (pooled.statistic, pooled.dof, pooled.pvalue)
    assert merged.groups[0].members == (0, 1)
    # one group with dof keeps its own method; several small groups get the Monte Carlo null of the sum
    assert grouped_gof([([3, 1], [1, 1]), ([5, 0], [1, 0])]).method == "exact binomial"
    small = grouped_gof([([3, 1, 0, 0], [1, 1, 0, 0]), ([0, 0, 1, 3], [0, 0, 1, 1])])
    assert small.method == "Monte Carlo" and small.dof == 2
    with pytest.raises(ValueError, match="group 1"):
        grouped_gof([([1, 2], [1, 1]), ([1, 2], [1.0])])


def pooled_test(groups):
    """The test this project used before per-group tests: every group's counts and expected counts pooled."""
    observed = sum(np.asarray(o, dtype=float) for o, _ in groups)
    expected = sum(np.asarray(p, dtype=float) / np.sum(p) * np.sum(o) for o, p in groups)
    keep = expected > 0
    return chi_square_gof(observed[keep], expected[keep])


ALPHA = 0.05
DRAWS = 600


def rejections(true_shares, expected_shares, sizes, seed):
    """Fraction of DRAWS samples (each group multinomial with its true shares) that each test rejects."""
    rng = np.random.default_rng(seed)
    grouped = pooled = 0
    for _ in range(DRAWS):
        groups = [(rng.multinomial(n, t), e) for t, e, n in zip(true_shares, expected_shares, sizes, strict=True)]
        grouped += grouped_gof(groups).pvalue < ALPHA
        pooled += pooled_test(groups).pvalue < ALPHA
    return grouped / DRAWS, pooled / DRAWS


def test_per_group_power_against_a_skewed_picker_is_at_least_the_pooled_tests():
    """A picker that gives the first of two zone endpoints 56% instead of 50% (Cohen's w 0.12), seen by a client
    whose zone has two endpoints, beside one whose zone has one (the issue's PreferSameZone case).

    The pooled statistic is the two-endpoint group's (the one-endpoint group adds exactly 0), judged against 2
    dof instead of 1: non-central chi-square with 1 dof and lambda = n w^2 against the 2-dof critical value, where
    the per-group test uses the 1-dof one. Theory gives both powers; fixed-seed draws agree within 4 SE.
    """
    n_b = 500
    true = [np.array([1.0, 0, 0]), np.array([0, 0.56, 0.44])]
    expected = [np.array([1.0, 0, 0]), np.array([0, 0.5, 0.5])]
    lam = n_b * cohens_w([0.56, 0.44], [0.5, 0.5]) ** 2
    theory_grouped = st.ncx2.sf(st.chi2.ppf(1 - ALPHA, 1), 1, lam)
    theory_pooled = st.ncx2.sf(st.chi2.ppf(1 - ALPHA, 2), 1, lam)
    assert theory_grouped > theory_pooled + 0.1  # 0.77 against 0.59
    grouped, pooled = rejections(true, expected, [500, n_b], seed=1)
    for got, want in ((grouped, theory_grouped), (pooled, theory_pooled)):
        assert abs(got - want) < 4 * math.sqrt(want * (1 - want) / DRAWS)
    assert grouped >= pooled
    # under the null the pooled test is the conservative one (size 0.014 for 0.05), the per-group one is not
    null_grouped, null_pooled = rejections(expected, expected, [500, n_b], seed=2)
    size_pooled = st.chi2.sf(st.chi2.ppf(1 - ALPHA, 2), 1)
    assert abs(null_grouped - ALPHA) < 4 * math.sqrt(ALPHA * (1 - ALPHA) / DRAWS)
    assert abs(null_pooled - size_pooled) < 4 * math.sqrt(size_pooled * (1 - size_pooled) / DRAWS)


def test_per_group_power_equals_the_pooled_tests_where_groups_share_their_shares():
    """Two clients on one node's Cluster route: the same shares, so merged; a 40/30/30 skew is found as often."""
    true = [np.array([0.4, 0.3, 0.3])] * 2
    expected = [np.full(3, 1 / 3)] * 2
    grouped, pooled = rejections(true, expected, [150, 150], seed=3)
    assert grouped == pooled
    lam = 300 * cohens_w([0.4, 0.3, 0.3], [1 / 3] * 3) ** 2
    want = st.ncx2.sf(st.chi2.ppf(1 - ALPHA, 2), 2, lam)
    assert abs(grouped - want) < 4 * math.sqrt(want * (1 - want) / DRAWS)
