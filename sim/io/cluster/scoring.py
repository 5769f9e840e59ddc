"""kube-scheduler's scores, pure and over arrays of nodes: one function per score plugin of the default profile,
its normalization, the weights the profile gives them, and ``selectHost``'s choice among the best.
``sim.io.cluster.placement`` applies them.

Sources (kubernetes/kubernetes): ``pkg/scheduler/apis/config/v1/default_plugins.go`` ``getDefaultPlugins`` (the
weights), ``pkg/scheduler/framework/plugins/noderesources/least_allocated.go`` ``leastResourceScorer``,
``balanced_allocation.go`` ``balancedResourceScorer``, ``resource_allocation.go`` (requested + the pod's request
against allocatable), ``podtopologyspread/scoring.go`` (``Score``, ``NormalizeScore``, ``scoreForCount``,
``topologyNormalizingWeight``) with the system default constraints of ``podtopologyspread/plugin.go``,
``helper/normalize_score.go`` ``DefaultNormalizeScore`` (NodeAffinity, TaintToleration),
``interpodaffinity/scoring.go`` ``NormalizeScore``, and ``pkg/scheduler/schedule_one.go`` ``selectHost``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

MAX_NODE_SCORE = 100
"""``framework.MaxNodeScore``."""

WEIGHTS = {
    "TaintToleration": 3,
    "NodeAffinity": 2,
    "NodeResourcesFit": 1,
    "PodTopologySpread": 2,
    "InterPodAffinity": 2,
    "NodeResourcesBalancedAllocation": 1,
}
"""The default profile's score weights (``getDefaultPlugins``); ImageLocality (weight 1) scores images the
objects do not describe, the same for every node, and is left out."""

SYSTEM_DEFAULT_CONSTRAINTS = (("kubernetes.io/hostname", 3), ("topology.kubernetes.io/zone", 5))
"""``podtopologyspread/plugin.go`` ``systemDefaultConstraints``: (topologyKey, maxSkew), ScheduleAnyway."""


def least_allocated(requested: np.ndarray, allocatable: np.ndarray) -> np.ndarray:
    """NodeResourcesFit ``LeastAllocated`` (``leastResourceScorer``, weight 1 per resource) of each node (rows:
    CPU millicores and memory bytes requested, the pod's included, and allocatable): the mean of
    ``leastRequestedScore`` (the unused share, 0-100; 0 when over capacity), resources the node has none of left
    out."""
    requested, allocatable = np.asarray(requested), np.asarray(allocatable)
    has = allocatable != 0
    cap = np.where(has, allocatable, 1)
    each = np.where(has & (requested <= cap), (cap - requested) * MAX_NODE_SCORE // cap, 0)
    n = has.sum(axis=1)
    return np.where(n > 0, each.sum(axis=1) // np.maximum(n, 1), 0).astype(np.int64)


def balanced_allocation(requested: np.ndarray, allocatable: np.ndarray) -> np.ndarray:
    """NodeResourcesBalancedAllocation (``balancedResourceScorer``) of each node: ``(1 - std) * 100`` of the
    requested fractions of CPU and memory (each at most 1); for two resources std is half their difference."""
    requested, allocatable = np.asarray(requested), np.asarray(allocatable)
    has = allocatable != 0
    fractions = np.minimum(requested / np.where(has, allocatable, 1), 1.0).astype(float)
    std = np.where(has.all(axis=1), np.abs((fractions[:, 0] - fractions[:, 1]) / 2), 0.0)
    return ((1 - std) * MAX_NODE_SCORE).astype(np.int64)


def default_normalize(scores: np.ndarray, *, reverse: bool = False) -> np.ndarray:
    """``DefaultNormalizeScore``: scaled to 0-100 by the highest; ``reverse`` turns it round (all 100 if all 0)."""
    scores = np.asarray(scores, dtype=np.int64)
    top = int(scores.max(initial=0))
    if top == 0:
        return np.full(len(scores), MAX_NODE_SCORE if reverse else 0, dtype=np.int64)
    out = MAX_NODE_SCORE * scores // top
    return MAX_NODE_SCORE - out if reverse else out


def spread_scores(
    counts: Sequence[np.ndarray],
    present: Sequence[np.ndarray],
    sizes: Sequence[int],
    skews: Sequence[int],
    ignored: np.ndarray,
) -> np.ndarray:
    """PodTopologySpread's normalized scores of the candidate nodes: per constraint, each candidate's matching
    pods (on it for the hostname key, in its domain otherwise), whether it has the key, the number of domains and
    maxSkew; ``ignored``: candidates missing a key of the pod's own constraints. Per constraint a node scores
    ``count * log(domains + 2) + maxSkew - 1`` (``scoreForCount``, ``topologyNormalizingWeight``), rounded,
    then ``100 * (max + min - score) / max`` (``NormalizeScore``); ignored nodes 0."""
    total = np.zeros(len(ignored))
    for count, has, size, skew in zip(counts, present, sizes, skews, strict=True):
        total = np.where(has, total + (np.asarray(count, dtype=np.int64) * math.log(size + 2) + (skew - 1)), total)
    raw = np.floor(total + 0.5).astype(np.int64)  # Go's math.Round on the non-negative scores
    valid = raw[~ignored]
    low, high = (int(valid.min()), int(valid.max())) if len(valid) else (0, 0)
    if high == 0:
        return np.where(ignored, 0, MAX_NODE_SCORE).astype(np.int64)
    return np.where(ignored, 0, MAX_NODE_SCORE * (high + low - raw) // high).astype(np.int64)


def interpod_normalize(scores: np.ndarray) -> np.ndarray:
    """InterPodAffinity ``NormalizeScore``: min-max scaled to 0-100; all 0 when every node scores the same."""
    scores = np.asarray(scores, dtype=np.int64)
    if not len(scores) or scores.max() == scores.min():
        return np.zeros(len(scores), dtype=np.int64)
    low, high = int(scores.min()), int(scores.max())
    return (MAX_NODE_SCORE * (scores - low) / (high - low)).astype(np.int64)


def select_host(totals: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    """``selectHost``: the index of the highest total, a tie broken by reservoir sampling (each later node equal to
    the best so far replaces the choice with probability 1/count), one draw ``rng.integers(count)`` per such node,
    in order; and how many tied for the best."""
    totals = np.asarray(totals)
    best_before = np.maximum.accumulate(totals)
    best_before = np.concatenate(([totals[0]], best_before[:-1]))
    new_best = np.flatnonzero(totals > best_before)
    start = int(new_best[-1]) if len(new_best) else 0
    equal = totals[1:] == best_before[1:]  # a draw at each node equal to the best before it
    drawn = np.flatnonzero(equal) + 1
    if not len(drawn):
        return start, 1
    segment = np.searchsorted(np.concatenate(([0], new_best)), drawn, side="right") - 1
    first = np.concatenate(([0], new_best))[segment]
    # the tied count at each draw: the draws since its segment's first node, plus that node
    rank = np.arange(len(drawn)) - np.searchsorted(drawn, first, side="left") + 2
    picks = uniform_integers(rng, rank)
    mine = drawn[(drawn > start) & (picks == 0)]
    tied = int(np.count_nonzero(drawn > start)) + 1
    return (int(mine[-1]) if len(mine) else start), tied


def uniform_integers(rng: np.random.Generator, highs: np.ndarray) -> np.ndarray:
    """``[rng.integers(h) for h in highs]`` (each ``h`` >= 1), the same numbers and the same generator state after,
    drawn at once: numpy's bounded integers below 2**32 are Lemire's method on 32-bit halves of the generator's
    64-bit words, the upper half kept for the next draw, and ``integers(1)`` draws nothing
    (``_bounded_integers.pyx``, ``buffered_bounded_lemire_uint32``); where a draw would be rejected (rare) or the
    generator is not PCG64, the draws are made one by one."""
    highs = np.asarray(highs, dtype=np.int64)
    out = np.zeros(len(highs), dtype=np.int64)
    drawn = highs > 1
    n = highs[drawn].astype(np.uint64)
    bits = rng.bit_generator
    state = bits.state
    if state.get("bit_generator") != "PCG64" or not len(n) or int(n.max()) >= 2**32:
        return np.array([int(rng.integers(h)) for h in highs], dtype=np.int64)
    words = [np.uint64(state["uinteger"])] if state["has_uint32"] else []
    need = len(n) - len(words)
    raw = bits.random_raw((need + 1) // 2) if need > 0 else np.zeros(0, dtype=np.uint64)
    halves = np.empty(2 * len(raw), dtype=np.uint64)
    halves[0::2] = raw & np.uint64(0xFFFFFFFF)
    halves[1::2] = raw >> np.uint64(32)
    m = np.concatenate([np.array(words, dtype=np.uint64), halves])[: len(n)] * n
    if np.any((m & np.uint64(0xFFFFFFFF)) < (np.uint64(2**32) - n) % n):
        bits.state = state
        return np.array([int(rng.integers(h)) for h in highs], dtype=np.int64)
    after: dict[str, Any] = dict(bits.state)
    if need > 0:
        after["has_uint32"], after["uinteger"] = need % 2, int(raw[-1] >> np.uint64(32))
    else:
        after["has_uint32"] = 0
    bits.state = after
    out[drawn] = (m >> np.uint64(32)).astype(np.int64)
    return out
