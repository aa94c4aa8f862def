"""Print the alerts a Prometheus server has firing and pending (used by scripts/demo).

python -m tools.alerts http://127.0.0.1:19090
"""

from __future__ import annotations

import json
import sys
import urllib.request
from typing import Any


def alerts(prometheus: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The server's active alerts (``/api/v1/alerts``), pending and firing."""
    with urllib.request.urlopen(prometheus.rstrip("/") + "/api/v1/alerts", timeout=timeout) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus answered {body}")
    return list(body["data"]["alerts"])


def report(active: list[dict[str, Any]]) -> str:
    """One line per state: the alerts in it with their severity and distinguishing labels, or "none"."""
    lines = []
    for state in ("firing", "pending"):
        found = [a for a in active if a.get("state") == state]
        names = [
            f"{a['labels'].get('alertname')} [{a['labels'].get('severity', '?')}]"
            + "".join(f" {k}={v}" for k, v in sorted(a["labels"].items()) if k in ("feature", "group", "topic"))
            for a in found
        ]
        lines.append(f"{state:8s} {len(found)}: " + ("; ".join(names) if names else "none"))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tools.alerts PROMETHEUS_URL", file=sys.stderr)
        return 2
    try:
        print(report(alerts(argv[0])))
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"alerts: cannot read {argv[0]}/api/v1/alerts: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
