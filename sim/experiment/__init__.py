"""Experiments over runs: the analysis of results, experiment specs, sweeps and where they execute."""
