"""Run the sandbox on werkzeug's threaded server (one process, so all state is shared)."""

from __future__ import annotations

import threading
from dataclasses import replace

from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from sandbox.app import create_app
from sandbox.config import SandboxConfig
from sandbox.state import Sandbox


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class SandboxServer:
    """A bound server; port 0 picks a free port, and ``base_url`` then names the real one."""

    def __init__(self, config: SandboxConfig, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = False) -> None:
        handler = _QuietHandler if quiet else WSGIRequestHandler
        self.app: Flask = create_app(config, start_webhooks=False)
        self.server: BaseWSGIServer = make_server(host, port, self.app, threaded=True, request_handler=handler)
        self.port = self.server.server_port
        self.url = f"http://{host}:{self.port}"
        if port == 0 or config.base_url == SandboxConfig.base_url:
            self.state.config = replace(self.state.config, base_url=self.url)
        self.state.dispatcher.start()
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> Sandbox:
        sb: Sandbox = self.app.extensions["sandbox"]
        return sb

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def start(self) -> SandboxServer:
        """Serve in a background thread (tests); a short poll interval makes :meth:`stop` quick."""
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox-http", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.state.dispatcher.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
