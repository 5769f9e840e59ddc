"""Every file format the tool reads or writes, one module each, all read through one table reader (``tables``):

- ``topology``: topology files; ``scenario``: scenario files (with ``durations``, ``workloads``, ``timeline``,
  ``samples`` for the parts they share with others);
- ``cluster``: the cluster-state readers: Kubernetes objects (kubectl dumps, manifests; YAML or JSON), kind
  Cluster configs, placement, pods, Services, given EndpointSlices, the generated topology, and ``builders`` for
  what every cluster-state reader builds; ``importer``: cluster state written back as a scenario;
- ``jaeger`` and ``otlp``: trace exports (Jaeger JSON, OTLP JSON) into spans, recognised among ``sim import``'s
  inputs by ``tracefiles``; the call graph is derived from spans in ``sim.traces``;
- ``experiment``: experiment specs and ``--set`` overrides;
- ``output``: the one writer of every output file (atomic; refuses devices, FIFOs, directories, inputs);
  ``store``: canonical JSON, a sweep's results directory; ``runfile``: a ``sim run --out`` file
  read back.

Files are parsed once into typed objects; unknown keys, wrong types and bad values raise SpecError naming the
file, the field and the problem.
"""

from sim.io.experiment import (
    is_experiment,
    load_experiment,
    load_scenario_set,
    parse_experiment,
    parse_set,
    sweep_command,
)
from sim.io.output import check_directory, check_file, write_file
from sim.io.runfile import load_run
from sim.io.scenario import load_scenario, parse_scenario
from sim.io.store import ResultDir, dumps_json, load_results
from sim.io.topology import load_topology, parse_topology

__all__ = [
    "ResultDir",
    "check_directory",
    "check_file",
    "dumps_json",
    "is_experiment",
    "load_experiment",
    "load_results",
    "load_run",
    "load_scenario",
    "load_scenario_set",
    "load_topology",
    "parse_experiment",
    "parse_scenario",
    "parse_set",
    "parse_topology",
    "sweep_command",
    "write_file",
]
