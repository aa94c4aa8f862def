"""The benchmarks behind every speed and memory claim; run from the repository root: python -m benchmarks.decode."""

from __future__ import annotations

import statistics


def print_medians(times: dict[str, list[float]]) -> None:
    """Each variant's median time per event, and how much slower Python is than native (where both ran)."""
    medians = {name: statistics.median(t) for name, t in times.items() if t}
    for name, median in medians.items():
        print(f"  {name:20s} {median:6.2f} µs per event")
    if "native" in medians and "python" in medians:
        print(f"  python / native: {medians['python'] / medians['native']:.1f}x")
