"""kube-scheduler's scores, pure: one function per score plugin of the default profile, its normalization, the
weights the profile gives them, and ``selectHost``'s choice among the best. ``sim.io.cluster.placement`` applies them.

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
from collections.abc import Mapping, Sequence

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

HOSTNAME_KEY = SYSTEM_DEFAULT_CONSTRAINTS[0][0]


def least_requested(requested: int, capacity: int) -> int:
    """``leastRequestedScore``: the unused share of one resource, 0-100 (0 when over capacity)."""
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


def least_allocated(requested: Sequence[int], allocatable: Sequence[int]) -> int:
    """NodeResourcesFit ``LeastAllocated`` (``leastResourceScorer``, weight 1 per resource): the mean unused share
    of CPU and memory, resources the node has none of left out."""
    scores = [least_requested(r, a) for r, a in zip(requested, allocatable, strict=True) if a]
    return sum(scores) // len(scores) if scores else 0


def balanced_allocation(requested: Sequence[int], allocatable: Sequence[int]) -> int:
    """NodeResourcesBalancedAllocation (``balancedResourceScorer``): ``(1 - std) * 100`` of the requested
    fractions (each at most 1); for two resources std is half their difference."""
    fractions = [min(r / a, 1.0) for r, a in zip(requested, allocatable, strict=True) if a]
    std = 0.0
    if len(fractions) == 2:
        std = abs((fractions[0] - fractions[1]) / 2)
    elif len(fractions) > 2:
        mean = sum(fractions) / len(fractions)
        std = math.sqrt(sum((f - mean) ** 2 for f in fractions) / len(fractions))
    return int((1 - std) * MAX_NODE_SCORE)


def default_normalize(scores: Sequence[int], *, reverse: bool = False) -> list[int]:
    """``DefaultNormalizeScore``: scaled to 0-100 by the highest; ``reverse`` turns it round (all 100 if all 0)."""
    top = max(scores, default=0)
    if top == 0:
        return [MAX_NODE_SCORE if reverse else 0 for _ in scores]
    out = [MAX_NODE_SCORE * s // top for s in scores]
    return [MAX_NODE_SCORE - s for s in out] if reverse else out


def _go_round(x: float) -> int:
    """Go's ``math.Round`` (half away from zero) for the non-negative scores here."""
    return math.floor(x + 0.5)


def spread_scores(
    candidates: Sequence[tuple[Mapping[str, str], int]],
    counted: Sequence[tuple[Mapping[str, str], int]],
    constraints: Sequence[tuple[str, int]],
    *,
    require_all: bool = False,
) -> list[int]:
    """PodTopologySpread's normalized scores of the ``candidates`` (labels, matching pods on the node), the pods
    of ``counted`` nodes (labels and matching pods of every node the constraints count, candidates included)
    summed per topology value. Per constraint a node scores ``count * log(domains + 2) + maxSkew - 1`` (rounded),
    then ``100 * (max + min - score) / max``. ``require_all`` (constraints of the pod's own) ignores nodes
    missing a key; the system defaults do not."""
    keys = [k for k, _ in constraints]
    ignored = [require_all and not all(k in labels for k in keys) for labels, _ in candidates]
    domains: list[dict[str, int]] = [{} for _ in constraints]
    for (labels, _), skip in zip(candidates, ignored, strict=True):
        for i, key in enumerate(keys):
            if key != HOSTNAME_KEY and not skip:
                domains[i].setdefault(labels.get(key, ""), 0)
    for labels, n in counted:
        if require_all and not all(k in labels for k in keys):
            continue
        for i, key in enumerate(keys):
            value = labels.get(key, "")
            if key != HOSTNAME_KEY and value in domains[i]:
                domains[i][value] += n
    size = [len(candidates) - sum(ignored) if k == HOSTNAME_KEY else len(domains[i]) for i, k in enumerate(keys)]
    raw: list[int | None] = []
    for (labels, n), skip in zip(candidates, ignored, strict=True):
        if skip:
            raw.append(None)
            continue
        total = 0.0
        for i, (key, skew) in enumerate(constraints):
            if key in labels:
                count = n if key == HOSTNAME_KEY else domains[i][labels[key]]
                total += count * math.log(size[i] + 2) + (skew - 1)
        raw.append(_go_round(total))
    valid = [s for s in raw if s is not None]
    low, high = min(valid, default=0), max(valid, default=0)
    if high == 0:
        return [0 if s is None else MAX_NODE_SCORE for s in raw]
    return [0 if s is None else MAX_NODE_SCORE * (high + low - s) // high for s in raw]


def interpod_normalize(scores: Sequence[int]) -> list[int]:
    """InterPodAffinity ``NormalizeScore``: min-max scaled to 0-100; all 0 when every node scores the same."""
    low, high = min(scores, default=0), max(scores, default=0)
    if high == low:
        return [0 for _ in scores]
    return [int(MAX_NODE_SCORE * (s - low) / (high - low)) for s in scores]


def select_host(totals: Sequence[int], rng: np.random.Generator) -> tuple[int, int]:
    """``selectHost``: the index of the highest total, a tie broken by reservoir sampling (each later tied node
    replaces the choice with probability 1/count), one draw from ``rng`` per tied node; and how many tied."""
    best, chosen, tied = totals[0], 0, 1
    for i, total in enumerate(totals[1:], start=1):
        if total > best:
            best, chosen, tied = total, i, 1
        elif total == best:
            tied += 1
            if int(rng.integers(tied)) == 0:
                chosen = i
    return chosen, tied
