"""Benchmarks and synthetic-data tools for pacelink."""
