import math

import pytest

from sim.stats import chi_square_gof, chi_square_power, cohens_w, verdict


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
    assert "caution" in verdict(chi_square_gof([3, 1, 1], [1, 1, 1]))


def test_two_cells_with_few_counts_use_the_exact_binomial():
    r = chi_square_gof([4, 0], [0.5, 0.5])
    assert r.method == "exact binomial"
    assert r.pvalue == pytest.approx(0.125)  # P(4-0 or 0-4) = 2/16
    assert chi_square_gof([60, 40], [0.5, 0.5]).method == "chi-square"
