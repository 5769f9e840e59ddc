"""Small builders shared by every reader of cluster state (scenario TOML, and readers of other formats): the
defaults a backend pod takes, the address a pod gets when none is given, and the Scenario's assembly with its
validation errors put on the file that was read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.cluster import DEFAULT_AFFINITY_TIMEOUT_S, MAX_AFFINITY_TIMEOUT_S, Discipline
from sim.distributions import Dist, Exponential
from sim.errors import SpecError
from sim.scenario import LINUX_SYN_TIMEOUT_S, SCENARIO, Scenario


@dataclass(frozen=True)
class Defaults:
    """What every pod and stream takes unless it says otherwise (a scenario's ``[defaults]``); times in s."""

    service_time: Dist = Exponential(0.001)
    concurrency: int = 1
    connect_timeout_s: float = LINUX_SYN_TIMEOUT_S
    queue_limit: int | None = None
    discipline: Discipline = Discipline.FIFO
    timeout_s: float | None = None


def pod_ip(node_index: int, k: int) -> str:
    """The address of the k-th pod (from 0) on the node at ``node_index`` when none is given: kind's pod CIDRs,
    ``10.244.<node index>.<k + 2>``."""
    return f"10.244.{node_index}.{k + 2}"


def affinity_timeout(value: float | None, error: Callable[[str], SpecError]) -> float:
    """sessionAffinityConfig.clientIP.timeoutSeconds (s): the API's default when None, else its upper bound
    checked; ``error(problem)`` makes the SpecError for the field."""
    if value is None:
        return DEFAULT_AFFINITY_TIMEOUT_S
    if value > MAX_AFFINITY_TIMEOUT_S:
        raise error(f"must be <= {MAX_AFFINITY_TIMEOUT_S:g}, got {value:g}")
    return value


def scenario(path: Path, **fields: Any) -> Scenario:
    """Build (and so validate) a Scenario; a problem it finds is reported against ``path``, the file read."""
    try:
        return Scenario(**fields)
    except SpecError as e:
        if e.path == SCENARIO:
            raise SpecError(str(path), e.field, e.problem) from None
        raise
