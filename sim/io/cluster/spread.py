"""PodTopologySpread (``pkg/scheduler/framework/plugins/podtopologyspread``): a pod's spread constraints (its own
``topologySpreadConstraints``, else the system defaults over ``helper.DefaultSelector``'s selector), their filter
(``filtering.go``: ``DoNotSchedule``) and their score (``scoring.go``: ``ScheduleAnyway``), on a
``sim.io.cluster.nodestate.Ledger``'s per-node counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from sim.io.cluster.nodestate import Ledger
from sim.io.cluster.objects import HOSTNAME_LABEL, KService, LabelSelector, SpreadConstraint
from sim.io.cluster.scoring import SYSTEM_DEFAULT_CONSTRAINTS, spread_scores

NO_DOMAIN_MIN = 2**31 - 1
"""``newCriticalPaths``' initial match count (``math.MaxInt32``): the global minimum when no node is eligible."""


def default_selector(
    namespace: str, labels: Mapping[str, str], services: Sequence[KService], owner: LabelSelector | None
) -> LabelSelector | None:
    """``helper.DefaultSelector`` (``pkg/scheduler/framework/plugins/helper/spread.go``): the selectors of the
    Services of the pod's namespace that select it (``GetPodServices``; a selectorless Service selects nothing),
    merged, and its controller's selector where that is a ReplicaSet, StatefulSet or ReplicationController
    (``owner``); None where that is empty (then the system default constraints are skipped)."""
    merged: dict[str, str] = {}
    for svc in services:
        selector = svc.fields.get("selector") or {}
        selects = selector and all(labels.get(k) == v for k, v in selector.items())
        if svc.name.partition("/")[0] == namespace and selects:
            merged.update(selector)
    if owner is not None:
        merged.update(owner.match_labels)
    expressions = owner.expressions if owner is not None else ()
    return LabelSelector(merged, expressions) if merged or expressions else None


def system_defaults(selector: LabelSelector | None) -> tuple[SpreadConstraint, ...]:
    """``systemDefaultConstraints`` over ``selector`` (``plugin.go``; ``buildDefaultConstraints``): none without
    one."""
    if selector is None:
        return ()
    return tuple(SpreadConstraint(skew, key, "ScheduleAnyway", selector) for key, skew in SYSTEM_DEFAULT_CONSTRAINTS)


def _counted(c: SpreadConstraint, matches: np.ndarray, tolerated: np.ndarray) -> np.ndarray:
    """The nodes whose pods a constraint counts (``matchNodeInclusionPolicies``): nodeAffinityPolicy Honor keeps
    the nodes the pod's node selector and required affinity accept; nodeTaintsPolicy Honor the nodes whose
    NoSchedule/NoExecute taints it tolerates."""
    out = np.ones(len(matches), dtype=bool)
    if c.node_affinity_policy == "Honor":
        out &= matches
    if c.node_taints_policy == "Honor":
        out &= tolerated
    return out


def _counts(ledger: Ledger, c: SpreadConstraint, namespace: str) -> np.ndarray:
    """Per node, the pods the constraint's selector selects (none without a selector)."""
    if c.selector is None:
        return np.zeros(len(ledger.nodes), dtype=np.int64)
    return ledger.selected(c.selector, namespace)


def _has_all(ledger: Ledger, constraints: Sequence[SpreadConstraint]) -> np.ndarray:
    """Per node: whether it has every constraint's topology key (``nodeLabelsMatchSpreadConstraints``)."""
    out = np.ones(len(ledger.nodes), dtype=bool)
    for c in constraints:
        out &= ledger.codes(c.topology_key, hostname=True)[0] >= 0
    return out


def spread_filter(
    ledger: Ledger,
    constraints: Sequence[SpreadConstraint],
    namespace: str,
    labels: Mapping[str, str],
    matches: np.ndarray,
    tolerated: np.ndarray,
) -> np.ndarray:
    """``Filter`` on every node, for the ``DoNotSchedule`` constraints: the node has every key, and per constraint
    ``matching pods in its domain + (1 if the pod matches itself) - global minimum <= maxSkew``, the minimum over
    the domains of the eligible nodes (``calPreFilterState``), 0 where there are fewer than ``minDomains``."""
    hard = [c for c in constraints if c.when_unsatisfiable == "DoNotSchedule"]
    has_all = _has_all(ledger, hard)
    ok = has_all.copy()
    for c in hard:
        codes, values = ledger.codes(c.topology_key, hostname=True)
        eligible = has_all & _counted(c, matches, tolerated)
        per = np.zeros(len(values) + 1, dtype=np.int64)
        np.add.at(per, codes[eligible], _counts(ledger, c, namespace)[eligible])
        domains = np.zeros(len(values) + 1, dtype=bool)
        domains[codes[eligible]] = True
        n_domains = int(domains.sum())
        low = int(per[domains].min()) if n_domains else NO_DOMAIN_MIN
        if n_domains < c.min_domains:
            low = 0
        self_match = int(c.selector is not None and c.selector.matches(labels))
        ok &= per[codes] + self_match - low <= c.max_skew  # codes -1 (no key) are already out by has_all
    return ok


def spread_score(
    ledger: Ledger,
    feasible: np.ndarray,
    constraints: Sequence[SpreadConstraint],
    namespace: str,
    matches: np.ndarray,
    tolerated: np.ndarray,
    *,
    require_all: bool,
) -> np.ndarray:
    """``Score`` and ``NormalizeScore`` of the ``feasible`` nodes, for the ``ScheduleAnyway`` constraints
    (``initPreScoreState``: the domains are the candidates' values, a missing one the value "" unless
    ``require_all``, the pod's own constraints, which ignore a node missing a key; the counts come from every
    node the inclusion policies keep); 0 for every node without such constraints (the plugin is skipped)."""
    soft = [c for c in constraints if c.when_unsatisfiable == "ScheduleAnyway"]
    if not soft:
        return np.zeros(len(feasible), dtype=np.int64)
    has_all = _has_all(ledger, soft) if require_all else np.ones(len(ledger.nodes), dtype=bool)
    ignored = ~has_all[feasible]
    counts, present, sizes = [], [], []
    for c in soft:
        codes, values = ledger.codes(c.topology_key, hostname=True)
        present.append(codes[feasible] >= 0)
        mine = _counts(ledger, c, namespace)
        if c.topology_key == HOSTNAME_LABEL:
            counts.append(mine[feasible])
            sizes.append(int((~ignored).sum()))
            continue
        empty = values.index("") if "" in values else len(values)
        codes = np.where(codes < 0, empty, codes)
        domains = np.zeros(len(values) + 1, dtype=bool)
        domains[codes[feasible[~ignored]]] = True
        counted = has_all & _counted(c, matches, tolerated) & domains[codes]
        per = np.zeros(len(values) + 1, dtype=np.int64)
        np.add.at(per, codes[counted], mine[counted])
        counts.append(per[codes[feasible]])
        sizes.append(int(domains.sum()))
    return spread_scores(counts, present, sizes, [c.max_skew for c in soft], ignored)
