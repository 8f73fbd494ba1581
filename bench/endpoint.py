"""The fidelity layer as an RDS endpoint on 127.0.0.1, so the handler under test runs in its own process.

The layer is attached (botocore hooks) to an in-process client under `mock_aws`; this HTTP server hands
each request it receives to that client's `before-send` chain (the layer: token bucket, latency, counts,
pagination, faults, then moto) and writes the answer back. The handler process points at it with
AWS_ENDPOINT_URL and runs unmodified: its own Pacer, its own botocore retries, real time. With clients of
several regions (a DR target's), each request goes to the client of the region it was signed for.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from botocore.awsrequest import AWSRequest

HOST = "127.0.0.1"
_SIGNED_REGION = re.compile(r"Credential=[^/]+/[^/]+/([^/]+)/rds/")  # SigV4's credential scope


@dataclass
class Timeline:
    """When requests of each operation arrived (time.monotonic), throttled attempts included."""

    first: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def seen(self, operation: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.first.setdefault(operation, now)
            self.last[operation] = now

    def span(self, operations: tuple[str, ...]) -> tuple[float, float] | None:
        """(first arrival, last arrival) over these operations, or None if none came."""
        firsts = [self.first[op] for op in operations if op in self.first]
        lasts = [self.last[op] for op in operations if op in self.last]
        return (min(firsts), max(lasts)) if firsts else None


@dataclass(frozen=True)
class Endpoint:
    url: str
    timeline: Timeline


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    clients: dict[str, Any]  # region -> client; the first is the default
    timeline: Timeline

    def client(self, authorization: str) -> Any:
        signed = _SIGNED_REGION.search(authorization)
        return self.clients.get(signed.group(1) if signed else "") or next(iter(self.clients.values()))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        action = parse_qs(body.decode()).get("Action", [""])[0]
        if not action:
            self._reply(400, {"Content-Type": "text/plain"}, b"not an RDS query-protocol request")
            return
        self.server.timeline.seen(action)
        client = self.server.client(self.headers.get("Authorization", ""))
        headers = {key: value for key, value in self.headers.items() if key.lower() not in ("host", "connection")}
        url = client.meta.endpoint_url.rstrip("/") + "/"
        request = AWSRequest(method="POST", url=url, headers=headers, data=body).prepare()
        _, response = client.meta.events.emit_until_response(f"before-send.rds.{action}", request=request)
        if response is None:
            self._reply(500, {"Content-Type": "text/plain"}, f"nothing answered {action}".encode())
            return
        self._reply(response.status_code, dict(response.headers), response.content)

    def _reply(self, status: int, headers: dict[str, str], content: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: thousands of requests per run."""


@contextmanager
def serve(client: Any, *others: Any) -> Iterator[Endpoint]:
    """Serve `client` (an RDS client with the layer attached, under mock_aws) at http://127.0.0.1:<port>,
    and `others` (clients of other regions) to the requests signed for their region."""
    server = _Server((HOST, 0), _Handler)
    server.clients = {c.meta.region_name: c for c in (client, *others)}
    server.timeline = Timeline()
    thread = threading.Thread(target=server.serve_forever, name="rds-endpoint", daemon=True)
    thread.start()
    try:
        yield Endpoint(f"http://{HOST}:{server.server_address[1]}", server.timeline)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
