"""Benchmarks: each script builds a throwaway PostgreSQL database, measures, and drops it."""
