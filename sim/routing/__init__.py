"""Service routing with Kubernetes semantics: which endpoints a connection may use, and how one is picked."""

from sim.routing.dataplane import DATAPLANES, DEFAULT_DATAPLANE, Dataplane, Route
from sim.routing.pickers import PICKERS, Chooser, Picker
from sim.routing.policy import Categorized, TopologyMode, categorize_endpoints, cilium_select_backends

__all__ = [
    "DATAPLANES",
    "DEFAULT_DATAPLANE",
    "PICKERS",
    "Categorized",
    "Chooser",
    "Dataplane",
    "Picker",
    "Route",
    "TopologyMode",
    "categorize_endpoints",
    "cilium_select_backends",
]
