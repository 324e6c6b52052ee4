"""The ``fetch_attachments`` job: the files a chatbot report links, fetched into its tracker issue.

A chatbot report names its attachments by URL (``report.attachments[].url``); the issue links
them. With ``attachments.allowed_hosts`` set, this job (queued with the report, after
``file_ticket`` in the same lane) also downloads each file and uploads it to the issue, like the
attachments of an email. Those URLs come from customers, through the chatbot, so every fetch
passes an SSRF guard first (``AttachmentFetcher``):

- only ``https`` (``http`` too with ``attachments.allow_http``), no credentials in the URL;
- only hosts matching ``attachments.allowed_hosts`` (glob patterns such as ``*.cdn.example``);
- the host is resolved ONCE and every address it resolves to is checked: loopback, private,
  link-local (``169.254.169.254``), shared and other non-public addresses are refused unless
  ``attachments.allow_private_networks``; multicast, reserved and unspecified ones always;
- the connection goes to a checked address (no second lookup that could answer differently),
  with the URL's host name in ``Host`` and, for https, in SNI and the certificate check;
- redirects are not followed blindly: each hop is checked like the first URL, at most
  ``attachments.max_redirects`` of them;
- ``attachments.max_bytes``: a larger ``Content-Length`` is refused before reading, and reading
  stops as soon as more arrives; ``attachments.total_timeout_seconds`` caps the whole fetch,
  redirects included, besides the connect and read timeouts of each request.

A refused URL is not fetched and stays a link in the issue; the log says why with a fixed reason
code (``host_not_allowed``, ``private_address``, ``too_large``...), never the URL, which may carry
personal data. A failure that may pass (DNS, connection, timeout, a 5xx) retries the job a few
times (``FETCH_ATTEMPTS``), then gives the file up the same way. Progress is recorded per
attachment (``Ticket.attachments_fetched``), so a retry goes on with the next one.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import certifi
import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationParseError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.exceptions import SSLError as Urllib3SSLError

from bridge.adapters.store.models import Job, Ticket
from bridge.adapters.store.repository import Store
from bridge.adapters.trackers.base import Tracker
from bridge.config import AttachmentsSettings, Settings
from bridge.domain import Destination, IssueRef
from bridge.errors import RetryableError
from bridge.pipeline.filing.file_ticket import destination_of, issue_ref_of, tracker_for
from bridge.pipeline.intake.chatbot import FETCH_ATTACHMENTS

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

FETCH_ATTEMPTS = 3
"""Job runs that may end in a passing failure (DNS, connection, timeout, 5xx) before a file is given up."""
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PASSING_STATUSES = frozenset({408, 425, 429})
CHUNK_BYTES = 64 * 1024
RUN_BUDGET_SECONDS = 100.0
"""Past this, one job hands the report's remaining files to a fresh job, so a long list does not
hold a worker thread for long (the lease is renewed while it runs, so it sets no limit)."""
USER_AGENT = "bridge-attachment-fetcher/1"


class FetchRefused(Exception):
    """The URL is not fetched, now or later: it stays a link. ``reason`` is a fixed code, safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FetchFailed(Exception):
    """The fetch failed in a way that may pass (DNS, connection, timeout, 5xx); ``reason`` as above."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class Fetched:
    content: bytes
    content_type: str | None
    """The server's ``Content-Type`` without parameters, if it sent one."""


@dataclass(frozen=True, kw_only=True)
class Target:
    """One checked URL: where to connect and what to ask for."""

    scheme: str
    host: str
    """Lower case, IDNA-encoded, without brackets or a trailing dot."""
    port: int
    host_header: str
    path: str
    """Path and query (the fragment is not sent)."""


def resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host`` from ONE lookup, in the resolver's order (tests replace this)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why a connection to ``address`` is refused (a reason code), or None when it is allowed.

    Multicast, unspecified and reserved addresses are never allowed; loopback, private, link-local
    and the other non-public ranges (shared address space, documentation, benchmarking...) only with
    ``allow_private``. An IPv4-mapped IPv6 address is judged as the IPv4 address it carries.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified:
        return "unspecified_address"
    if address.is_multicast:
        return "multicast_address"
    if address.is_loopback:
        reason: str | None = "loopback_address"
    elif address.is_link_local:
        reason = "link_local_address"
    elif address.is_private:
        reason = "private_address"
    elif address.is_reserved:
        return "reserved_address"
    elif not address.is_global:
        reason = "non_public_address"
    else:
        return None
    return None if allow_private else reason


def host_allowed(host: str, patterns: list[str]) -> bool:
    """Whether ``host`` (lower case) matches one of the allow-list's glob patterns."""
    return any(fnmatch.fnmatchcase(host, pattern) for pattern in patterns)


class AttachmentFetcher:
    """Fetches one URL behind the SSRF guard described in the module docstring."""

    def __init__(self, settings: AttachmentsSettings, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._monotonic = monotonic

    @property
    def enabled(self) -> bool:
        """Fetching is on when some host is allowed."""
        return bool(self._settings.allowed_hosts)

    def check(self, url: str) -> Target:
        """The URL's scheme, form and host against the policy (no DNS yet); ``FetchRefused`` if not."""
        settings = self._settings
        if not self.enabled:
            raise FetchRefused("fetching_off")
        try:
            parts = urlsplit(url)
            hostname, port = parts.hostname, parts.port
        except ValueError:
            raise FetchRefused("bad_url") from None
        scheme = parts.scheme.lower()
        if scheme != "https" and not (scheme == "http" and settings.allow_http):
            raise FetchRefused("scheme_not_allowed")
        if parts.username is not None or parts.password is not None:
            raise FetchRefused("credentials_in_url")
        host = (hostname or "").rstrip(".")
        if not host:
            raise FetchRefused("bad_url")
        literal = _literal(host)
        if literal is None:
            try:
                host = host.encode("idna").decode("ascii").lower()
            except UnicodeError:
                raise FetchRefused("bad_url") from None
        else:
            host = str(literal)
        if not host_allowed(host, settings.allowed_hosts):
            raise FetchRefused("host_not_allowed")
        default_port = 443 if scheme == "https" else 80
        port = port or default_port
        shown = f"[{host}]" if isinstance(literal, ipaddress.IPv6Address) else host
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in path):
            raise FetchRefused("bad_url")
        return Target(
            scheme=scheme,
            host=host,
            port=port,
            host_header=shown if port == default_port else f"{shown}:{port}",
            path=path,
        )

    def addresses(self, target: Target) -> list[IPAddress]:
        """The target's addresses from one DNS lookup, each checked; ``FetchRefused`` if any is not allowed."""
        literal = _literal(target.host)
        if literal is not None:
            candidates = [literal]
        else:
            try:
                found = resolve(target.host, target.port)
            except (OSError, UnicodeError):
                raise FetchFailed("dns_failed") from None
            candidates = []
            for text in found:
                address = _literal(text.split("%", 1)[0])  # an IPv6 zone id is not part of the address
                if address is None:
                    raise FetchRefused("bad_address")
                candidates.append(address)
            if not candidates:
                raise FetchFailed("dns_failed")
        for address in candidates:
            reason = address_refusal(address, allow_private=self._settings.allow_private_networks)
            if reason is not None:
                raise FetchRefused(reason)
        return candidates

    def fetch(self, url: str) -> Fetched:
        """The file at ``url``: ``FetchRefused`` (never fetch it) or ``FetchFailed`` (may pass)."""
        deadline = self._monotonic() + self._settings.total_timeout_seconds
        current = url
        for _hop in range(self._settings.max_redirects + 1):
            target = self.check(current)
            pool, response = self._open(target, self.addresses(target), deadline)
            try:
                if response.status in REDIRECT_STATUSES:
                    location = response.headers.get("Location")
                    if not location:
                        raise FetchRefused("redirect_without_location")
                    current = urljoin(current, location.strip())
                    continue
                _check_status(response.status)
                return self._read(response, deadline)
            finally:
                response.release_conn()
                response.close()
                pool.close()
        raise FetchRefused("too_many_redirects")

    # --- one request ------------------------------------------------------------------------------

    def _open(
        self, target: Target, addresses: list[IPAddress], deadline: float
    ) -> tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
        """GET the target from the first of its checked addresses that accepts a connection."""
        settings = self._settings
        headers = {
            "Host": target.host_header,
            "User-Agent": USER_AGENT,
            "Accept": "*/*",
            "Accept-Encoding": "identity",
        }
        for address in addresses:
            remaining = self._remaining(deadline)
            timeout = urllib3.Timeout(
                connect=min(settings.connect_timeout_seconds, remaining),
                read=min(settings.read_timeout_seconds, remaining),
            )
            pool = self._pool(target, address, timeout)
            try:
                response = pool.urlopen(
                    "GET",
                    target.path,
                    headers=headers,
                    redirect=False,
                    retries=False,
                    assert_same_host=False,
                    preload_content=False,
                    release_conn=False,
                )
            except Urllib3SSLError:
                pool.close()
                raise FetchRefused("tls_error") from None
            except (NewConnectionError, ConnectTimeoutError):
                pool.close()
                continue  # the next checked address, if any
            except ReadTimeoutError:
                pool.close()
                raise self._timed_out(deadline) from None
            except (LocationParseError, ValueError):
                pool.close()
                raise FetchRefused("bad_url") from None
            except (HTTPError, OSError):
                pool.close()
                raise FetchFailed("connection_failed") from None
            return pool, response
        raise FetchFailed("connection_failed")

    def _pool(self, target: Target, address: IPAddress, timeout: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
        """A one-connection pool to the checked ``address``: no DNS lookup happens past this point."""
        if target.scheme == "https":
            context = ssl.create_default_context(cafile=self._settings.ca_file or certifi.where())
            return urllib3.HTTPSConnectionPool(
                str(address),
                target.port,
                timeout=timeout,
                retries=False,
                maxsize=1,
                ssl_context=context,
                server_hostname=target.host,
                assert_hostname=target.host,
            )
        return urllib3.HTTPConnectionPool(str(address), target.port, timeout=timeout, retries=False, maxsize=1)

    def _read(self, response: urllib3.BaseHTTPResponse, deadline: float) -> Fetched:
        limit = self._settings.max_bytes
        encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding != "identity":
            raise FetchRefused("content_encoding")  # we asked for identity; a compressed body could be a bomb
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise FetchRefused("too_large")
        chunks: list[bytes] = []
        size = 0
        while True:
            self._remaining(deadline)
            try:
                chunk = response.read1(CHUNK_BYTES, decode_content=False)
            except ReadTimeoutError:
                raise self._timed_out(deadline) from None
            except (HTTPError, OSError):
                raise FetchFailed("connection_failed") from None
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise FetchRefused("too_large")
            chunks.append(chunk)
        content_type = (response.headers.get("Content-Type") or "").split(";", 1)[0].strip() or None
        return Fetched(content=b"".join(chunks), content_type=content_type)

    def _remaining(self, deadline: float) -> float:
        remaining = deadline - self._monotonic()
        if remaining <= 0:
            raise FetchRefused("too_slow")
        return remaining

    def _timed_out(self, deadline: float) -> Exception:
        """A read that timed out: past the total cap the file is refused, else it may pass."""
        return FetchRefused("too_slow") if deadline - self._monotonic() <= 0 else FetchFailed("timeout")


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _check_status(status: int) -> None:
    if status == 200:
        return
    if status in PASSING_STATUSES or status >= 500:
        raise FetchFailed(f"http_{status}")
    raise FetchRefused(f"http_{status}")


# --- the job -------------------------------------------------------------------------------------


class AttachmentFetchJob:
    """The ``fetch_attachments`` job of one chatbot ticket."""

    def __init__(
        self,
        *,
        store: Store,
        trackers: Mapping[str, Tracker],
        settings: Settings,
        clock: Callable[[], datetime],
        fetcher: AttachmentFetcher | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._trackers = trackers
        self._settings = settings
        self._now = clock
        self._fetcher = fetcher or AttachmentFetcher(settings.attachments)
        self._monotonic = monotonic

    def __call__(self, job: Job) -> None:
        if not self._fetcher.enabled:
            return  # switched off after the job was queued: the attachments stay links
        ticket = self._store.job_ticket(job)
        dest, ref = destination_of(ticket), issue_ref_of(ticket)
        if dest is None or ref is None:
            raise RetryableError("the ticket has no tracker issue yet")
        attachments: list[Any] = list(ticket.attachments or [])
        done = ticket.attachments_fetched
        tracker = tracker_for(self._trackers, dest)
        started = self._monotonic()
        uploaded = 0
        for index in range(done, len(attachments)):
            if index > done and self._monotonic() - started > RUN_BUDGET_SECONDS:
                self._continue_later(ticket.id)
                break
            item = attachments[index] if isinstance(attachments[index], dict) else {}
            url = item.get("url")
            if (
                isinstance(url, str)
                and url
                and self._fetch_and_upload(job, ticket, index, item, url, target=(tracker, dest, ref))
            ):
                uploaded += 1
            self._record(ticket.id, index + 1)
        log.info(
            "attachments.fetch_done",
            extra={"tracking_id": ticket.tracking_id, "uploaded": uploaded, "of": len(attachments)},
        )

    def _fetch_and_upload(
        self,
        job: Job,
        ticket: Ticket,
        index: int,
        item: dict[str, Any],
        url: str,
        *,
        target: tuple[Tracker, Destination, IssueRef],
    ) -> bool:
        """Fetch one file and upload it; False when it stays a link (the reason is logged)."""
        tracker, dest, ref = target
        try:
            fetched = self._fetcher.fetch(url)
        except FetchRefused as exc:
            _not_fetched(ticket, index, exc.reason, refused=True)
            return False
        except FetchFailed as exc:
            if job.attempts < FETCH_ATTEMPTS:
                raise RetryableError(f"attachment {index + 1}: {exc.reason}") from None
            _not_fetched(ticket, index, exc.reason, refused=False)
            return False
        content_type = str(item.get("content_type") or fetched.content_type or "application/octet-stream")
        tracker.upload_attachment(
            dest,
            ref,
            filename=str(item.get("filename") or "attachment"),
            content_type=content_type,
            content=fetched.content,
        )
        log.info(
            "attachments.uploaded",
            extra={"tracking_id": ticket.tracking_id, "attachment": index + 1, "bytes": len(fetched.content)},
        )
        return True

    def _record(self, ticket_id: int, fetched: int) -> None:
        with self._store.session() as session:
            ticket = session.get(Ticket, ticket_id)
            if ticket is not None and ticket.attachments_fetched < fetched:
                ticket.attachments_fetched = fetched

    def _continue_later(self, ticket_id: int) -> None:
        with self._store.session() as session:
            self._store.new_job(session, kind=FETCH_ATTACHMENTS, ticket_id=ticket_id, now=self._now())
        log.info("attachments.fetch_continues", extra={"ticket_id": ticket_id})


def _not_fetched(ticket: Ticket, index: int, reason: str, *, refused: bool) -> None:
    # The reason code only: the URL (and the file name) may carry personal data.
    log.warning(
        "attachments.not_fetched",
        extra={
            "tracking_id": ticket.tracking_id,
            "attachment": index + 1,
            "reason": reason,
            "outcome": "refused" if refused else "gave_up",
        },
    )
