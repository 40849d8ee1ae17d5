"""Benchmarks: commands that print figures (medians over several runs) and name the machine."""
