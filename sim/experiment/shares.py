"""Expected shares: what the routing layer says each pod should receive of a route's fresh picks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sim.records import RunResult
from sim.routing import Picker
from sim.scenario import stream_route


def pod_index(result: RunResult) -> dict[str, int]:
    """Each pod's index in ``result.pod_names``, by name."""
    return {name: i for i, name in enumerate(result.pod_names)}


def route_shares(
    result: RunResult, stream: int, node: int, version: int, pods: Mapping[str, int] | None = None
) -> tuple[np.ndarray, Picker]:
    """The share of fresh picks each pod should receive (over ``pod_names``; sums to 1, or 0 where the route
    drops) for ``stream`` entering at node index ``node`` under control-plane ``version``, and the picker.
    ``pods``: ``pod_index(result)``, made here when not given (pass it when asking for many routes)."""
    sc = result.scenario
    spec = result.stream(stream)
    route = stream_route(sc, spec, result.node_names[node], version)
    shares = np.zeros(len(result.pod_names))
    if route.endpoints:
        index = pod_index(result) if pods is None else pods
        idx = [index[ep.pod or ""] for ep in route.endpoints]
        shares[idx] = route.picker.shares(route.endpoints, sc.client_ip(spec.client))
    return shares, route.picker


@dataclass(frozen=True)
class ExpectedPicks:
    """One Service's fresh picks against their routes: per pod (aligned with ``pod_names``) the expected fresh
    picks, the routed requests that reached a pod their route did not allow, the pickers by name, and per group of
    requests with one route its picks and shares (``groups``) and its (stream, entry node, version) (``members``)."""

    expected: np.ndarray
    violations: int
    pickers: dict[str, Picker]
    groups: list[tuple[np.ndarray, np.ndarray]]
    members: list[tuple[int, int, int]]


def _groups(stream: np.ndarray, entry: np.ndarray, version: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct (stream, entry node, version) triples in lexicographic order, and each request's index into
    them: one int64 key a request (entry node + 1 and version in mixed radix under the stream), sorted once, where
    the rows of a (requests, 3) array sorted as rows took three times the memory and time."""
    if not len(stream):
        return np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int64)
    n_entry, n_version = int(entry.max()) + 2, int(version.max()) + 1
    key = stream.astype(np.int64) * n_entry
    key += entry
    key += 1
    key *= n_version
    key += version
    unique = np.unique(key)  # then each key's place in it: np.unique's own inverse holds three more arrays of n
    which = np.searchsorted(unique, key)
    del key
    triples = np.stack((unique // n_version // n_entry, unique // n_version % n_entry - 1, unique % n_version), axis=1)
    return triples, which


def expected_picks(
    result: RunResult,
    stream: np.ndarray,
    entry: np.ndarray,
    version: np.ndarray,
    endpoint: np.ndarray,
    fresh: np.ndarray,
    pods: Mapping[str, int] | None = None,
) -> ExpectedPicks:
    """Expected counts of one Service's requests (their stream, entry node, version, endpoint, and whether a picker
    chose afresh): each (stream, entry node, version) group's fresh picks times its route's shares. Each group is
    its own multinomial (its route's shares); ``sim.stats.grouped_gof`` merges groups of equal shares and sums the
    rest's statistics and dof. ``pods``: ``pod_index(result)``, made here when not given."""
    n_pods = len(result.pod_names)
    pods = pod_index(result) if pods is None else pods
    routed = endpoint >= 0
    unique, which = _groups(stream, entry, version)
    expected = np.zeros(n_pods)
    violations = 0
    pickers: dict[str, Picker] = {}
    groups: list[tuple[np.ndarray, np.ndarray]] = []
    members: list[tuple[int, int, int]] = []
    for g, (k, node, v) in enumerate(unique.tolist()):
        shares, picker = route_shares(result, k, node, v, pods)
        group = which == g
        if routed[group].any():
            pickers[picker.name] = picker
        picked = np.bincount(endpoint[group & fresh], minlength=n_pods)
        expected += picked.sum() * shares
        violations += int(np.count_nonzero(shares[endpoint[group & routed]] == 0))
        if picked.any() and shares.sum() > 0:
            groups.append((picked, shares))
            members.append((k, node, v))
    return ExpectedPicks(expected, violations, pickers, groups, members)
