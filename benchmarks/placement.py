"""Placement benchmark (issue 24): ``sim import`` of one Deployment of N replicas on N/100 Nodes.

Usage: ``python benchmarks/placement.py [--replicas N ...] [--keep DIR]``.

The input, a Kubernetes List: N/100 Nodes (64 cores, 256 GiB, 110 pods, in three zones ``z0``-``z2``) and one
Deployment ``web`` of N replicas requesting 100m and 128 MiB. Each size is placed by ``sim -q import`` in a child
process, timed by the wall clock; one line a size: ``placement: replicas=N nodes=M wall_s=X``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PODS_PER_NODE = 100
"""Replicas per Node the input gives room for (kubelet's 110 allowed)."""


def cluster(replicas: int) -> dict[str, Any]:
    """The input: ``replicas / PODS_PER_NODE`` Nodes in three zones and one Deployment of ``replicas``."""
    nodes = [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"n{i}",
                "labels": {"kubernetes.io/hostname": f"n{i}", "topology.kubernetes.io/zone": f"z{i % 3}"},
            },
            "status": {"allocatable": {"cpu": "64", "memory": "256Gi", "pods": "110"}},
        }
        for i in range(max(1, -(-replicas // PODS_PER_NODE)))
    ]
    requests = {"cpu": "100m", "memory": "128Mi"}
    web = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web", "tier": "t"}},
                "spec": {"containers": [{"name": "c", "resources": {"requests": requests}}]},
            },
        },
    }
    return {"apiVersion": "v1", "kind": "List", "items": [*nodes, web]}


def main(argv: list[str] | None = None) -> int:
    """Time ``sim import`` at each size asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1000, 10000, 140000])
    parser.add_argument("--keep", type=Path, help="write the inputs and outputs here (default: a temporary dir)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        for n in args.replicas:
            source = where / f"placement-{n}.json"
            source.write_text(json.dumps(cluster(n)))
            start = time.perf_counter()
            command = [sys.executable, "-m", "sim", "-q", "import", str(source), "-o", str(where / f"placed-{n}.toml")]
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - start
            nodes = max(1, -(-n // PODS_PER_NODE))
            print(f"placement: replicas={n} nodes={nodes} wall_s={wall:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
