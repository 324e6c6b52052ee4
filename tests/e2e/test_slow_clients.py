"""Slow clients cannot starve the web service: the shipped server, as started in production.

200 connections that stop half-way (100 in their headers, 100 in a body they announced with
``Content-Length: 1000``) stay open while ``/healthz`` is asked on fresh connections: every answer
comes within 1 s, and a real report is still accepted. With gunicorn's threaded workers as once
shipped (2 x 4 threads), 12 such connections made the service unanswerable.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import requests

from tests.e2e.harness import Stack, new_event_id

STALLED = 200
DEADLINE = 1.0


@contextmanager
def stalled_connections(host: str, port: int, count: int) -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        for index in range(count):
            conn = socket.create_connection((host, port), timeout=5)
            if index % 2:
                # headers never finished
                conn.sendall(b"POST /webhooks/chatbot HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/js")
            else:
                # headers complete, body announced and never sent
                conn.sendall(
                    b"POST /webhooks/chatbot HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 1000\r\n\r\n{"event_id": '
                )
            opened.append(conn)
        yield opened
    finally:
        for conn in opened:
            conn.close()


def test_stalled_connections_leave_the_service_answering(stack: Stack) -> None:
    url = urlsplit(stack.web_url)
    assert url.hostname
    assert url.port
    with stalled_connections(url.hostname, url.port, STALLED) as opened:
        assert len(opened) == STALLED
        time.sleep(0.5)  # let the server take them all in before measuring
        slowest = 0.0
        for _ in range(10):
            started = time.monotonic()
            answer = requests.get(f"{stack.web_url}/healthz", timeout=DEADLINE)
            slowest = max(slowest, time.monotonic() - started)
            assert answer.status_code == 200
        assert slowest < DEADLINE, f"/healthz took {slowest:.3f} s with {STALLED} stalled connections"

        event = {
            "event_id": new_event_id(),
            "type": "report.created",
            "reporter": {"email": "slow-clients@kunde.dk", "locale": "en"},
            "report": {"title": "Widget blank while others stall", "description": "The page is white."},
        }
        response = stack.post_event(event)
        assert response.status_code == 202, response.text
        # the stalled clients are still connected: the server did not simply drop them all
        still_open = sum(1 for conn in opened if _is_open(conn))
        assert still_open == STALLED


def _is_open(conn: socket.socket) -> bool:
    """Nothing to read and no EOF: the server holds the connection, waiting for the rest."""
    conn.setblocking(False)
    try:
        return conn.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        conn.setblocking(True)
