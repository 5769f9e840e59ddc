"""Experiments over runs: analysis of results (and, later, sweeps and executors)."""
