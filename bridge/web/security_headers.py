"""Headers every answer carries, whatever route produced it.

Pages set their own ``Content-Security-Policy`` and caching; these are the floor beneath them:
no MIME sniffing, no framing, and HSTS when the bridge is published over HTTPS
(``server.public_url``). The bridge is reached through that URL, so a browser that saw it once
keeps to HTTPS even if a link or a proxy downgrades it.
"""

from __future__ import annotations

from flask import Flask, Response

HSTS = "max-age=31536000"  # one year; no includeSubDomains: the bridge does not own its parent domain


def register_security_headers(app: Flask, public_url: str) -> None:
    hsts = public_url.lower().startswith("https://")

    @app.after_request
    def _security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if hsts:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response
