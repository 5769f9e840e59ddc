"""Cluster state read from Kubernetes objects: ``objects`` (the typed objects and well-known labels), ``fields``
(one object being read, with errors naming file, object and field), ``kubernetes`` (files and documents into
objects), ``kind`` (kind Cluster configs), ``podspec`` and ``scoring`` (what kube-scheduler reads and scores),
``placement`` (workloads onto nodes), ``cluster_state`` (placed objects into pods, Services and given
EndpointSlices, through ``builders``) and ``network`` (the topology generated from zones).
"""
