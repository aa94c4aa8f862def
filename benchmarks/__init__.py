"""The benchmarks behind every speed and memory claim; run from the repository root: python -m benchmarks.decode."""
