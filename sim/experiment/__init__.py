"""Experiments over runs: per-run metrics, expected shares, tidy tables, experiment specs, sweeps and where they
execute."""
