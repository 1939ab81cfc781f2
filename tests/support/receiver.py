"""A real local HTTP server that records webhook deliveries and answers as told."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .processes import wait_until


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    # wall-clock time the request arrived (built while the handler records it)
    received_at: float = field(default_factory=time.time)

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """Records every POST. `responses` is a queue of statuses to answer with (then 204)."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.responses: deque[int] = deque()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    status = receiver.responses.popleft() if receiver.responses else 204
                    receiver.deliveries.append(
                        Delivery(
                            self.path, {k.lower(): v for k, v in self.headers.items()}, body, status
                        )
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/hooks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def for_request(self, request_id: str, path: str | None = None) -> list[Delivery]:
        with self._lock:
            found = [
                d
                for d in self.deliveries
                if d.status < 300 and d.json.get("request_id") == request_id
            ]
        return [d for d in found if path is None or d.path == path]

    def wait_summary(self, request_id: str, timeout: float = 10.0) -> Delivery:
        def find() -> Delivery | None:
            for d in self.for_request(request_id):
                if d.json.get("type") == "summary":
                    return d
            return None

        result: Delivery = wait_until(
            find, timeout=timeout, what=f"summary webhook for {request_id}"
        )
        return result
