"""The HTTP endpoint: ``/metrics`` (Prometheus text format), ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

# The routes, named once: probes and scrape configurations (deploy/helm) are checked against them.
METRICS_PATH = "/metrics"
HEALTH_PATH = "/healthz"  # 200 while the process serves: liveness
READY_PATH = "/readyz"  # 200 once partitions are assigned and Redis answers, else 503 and why: readiness
ROUTES = (METRICS_PATH, HEALTH_PATH, READY_PATH)


class MetricsServer:
    """Serves a registry on ``host:port`` from a daemon thread. Port 0 picks a free port."""

    def __init__(
        self, registry: CollectorRegistry, host: str, port: int, ready: Callable[[], tuple[bool, str]]
    ) -> None:
        self._registry = registry
        self._ready = ready
        handler = self._handler()
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry, ready = self._registry, self._ready

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == METRICS_PATH:
                    self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                elif path == HEALTH_PATH:
                    self._send(200, b"ok\n")
                elif path == READY_PATH:
                    ok, why = ready()
                    self._send(200 if ok else 503, (why + "\n").encode())
                else:
                    self._send(404, f"not found: try {METRICS_PATH}, {HEALTH_PATH} or {READY_PATH}\n".encode())

            def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # scrapes are not worth a log line
                pass

        return Handler
