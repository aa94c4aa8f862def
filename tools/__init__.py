"""Tooling around stream-scorer, not installed with it: chaos scenarios, the synthetic world, summaries."""
