"""Service routing with Kubernetes semantics: which endpoints a connection may use, and how one is picked."""

from sim.routing.affinity import Affinity
from sim.routing.dataplane import (
    DATAPLANES,
    DEFAULT_DATAPLANE,
    LOCAL_TRAFFIC_DETECTORS,
    NO_BACKEND_RESPONSES,
    Dataplane,
    DataplaneConfig,
    Route,
    Source,
    source_range_denied,
)
from sim.routing.hints import Hints, generate_hints
from sim.routing.pickers import PICKERS, Chooser, Picker, flow_key, ip_key
from sim.routing.policy import (
    Categorized,
    TopologyMode,
    categorize_endpoints,
    cilium_port_matches,
    cilium_select_backends,
    local_ready_endpoints,
)

__all__ = [
    "DATAPLANES",
    "DEFAULT_DATAPLANE",
    "LOCAL_TRAFFIC_DETECTORS",
    "NO_BACKEND_RESPONSES",
    "PICKERS",
    "Affinity",
    "Categorized",
    "Chooser",
    "Dataplane",
    "DataplaneConfig",
    "Hints",
    "Picker",
    "Route",
    "Source",
    "TopologyMode",
    "categorize_endpoints",
    "cilium_port_matches",
    "cilium_select_backends",
    "flow_key",
    "generate_hints",
    "ip_key",
    "local_ready_endpoints",
    "source_range_denied",
]
