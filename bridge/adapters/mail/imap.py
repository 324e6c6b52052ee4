"""Reading a plain mailbox over IMAP: one bounded poll at a time, run by the worker.

Each poll connects, stores every waiting message through ``store`` (the same storage as
``POST /webhooks/email/raw``) and only then moves it to the processed folder, so a message
is never lost: a crash between storing and moving leaves it in the folder, and the next poll
stores it again as a duplicate (the message key is unique) and moves it. Without MOVE
(RFC 6851) a message is copied and expunged; when even that is impossible, or no processed
folder is configured, it stays and is flagged ``\\Seen`` plus the ``$BridgeStored`` keyword,
which the search skips.

A message that can never be stored (the store raises ``SetAside``: the database refuses its
contents) does not hold up the ones after it: it stays in the folder, flagged ``\\Flagged`` plus
the ``$BridgeSetAside`` keyword, which the search skips, and the poll goes on. Any other failure
of the store (the database is down) ends the poll with the message where it was.

When the server offers IDLE (RFC 2177) the poll then waits in IDLE for up to
``idle_seconds`` and stores new mail as it arrives; the poll always ends, so the worker's
periodic task is the only loop and a lost connection costs one interval at most.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from imapclient import IMAPClient  # type: ignore[import-untyped]
from imapclient.exceptions import IMAPClientError  # type: ignore[import-untyped]

from bridge.config import ImapSettings

log = logging.getLogger(__name__)

STORED_KEYWORD = "$BridgeStored"
"""Set (with ``\\Seen``) on a message that could not be moved: the search skips it."""
SET_ASIDE_KEYWORD = "$BridgeSetAside"
"""Set (with ``\\Flagged``, so people see it) on a message that can never be stored: the search skips it."""

_SEEN = b"\\Seen"
_DELETED = b"\\Deleted"
_FLAGGED = b"\\Flagged"
_IDLE_CHECK_SECONDS = 10.0


@dataclass
class PollResult:
    fetched: int = 0
    duplicates: int = 0
    moved: int = 0
    flagged: int = 0
    set_aside: int = 0


class SetAside(Exception):
    """Raised by the poller's ``store`` for a message that can never be stored (the reason is safe to log)."""


class ImapPoller:
    """One mailbox. ``store(raw)`` keeps a message and returns True when it was new, or raises
    ``SetAside`` for one it can never keep."""

    def __init__(
        self,
        settings: ImapSettings,
        *,
        store: Callable[[bytes], bool],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._store = store
        self._monotonic = monotonic

    def __repr__(self) -> str:  # never the password
        s = self._settings
        return f"ImapPoller(host={s.host!r}, port={s.effective_port}, user={s.user!r}, folder={s.folder!r})"

    def poll(self) -> PollResult:
        """Store and file away every waiting message, then IDLE for new ones (bounded)."""
        settings = self._settings
        result = PollResult()
        deadline = self._monotonic() + settings.idle_seconds
        client = self._connect()
        try:
            processed = self._prepare(client)
            self._drain(client, processed, result)
            if settings.idle_seconds > 0 and client.has_capability("IDLE"):
                while (remaining := deadline - self._monotonic()) > 0:
                    if self._idle(client, min(remaining, _IDLE_CHECK_SECONDS)):
                        self._drain(client, processed, result)
        finally:
            with contextlib.suppress(IMAPClientError, OSError):
                client.logout()
        if result.fetched:
            log.info(
                "imap.polled",
                extra={
                    "folder": settings.folder,
                    "fetched": result.fetched,
                    "duplicates": result.duplicates,
                    "moved": result.moved,
                    "flagged": result.flagged,
                    "set_aside": result.set_aside,
                },
            )
        return result

    # --- steps ----------------------------------------------------------------------------------

    def _connect(self) -> IMAPClient:
        s = self._settings
        context = ssl.create_default_context(cafile=s.ca_file) if (s.tls or s.starttls) else None
        client = IMAPClient(
            s.host or "", port=s.effective_port, ssl=s.tls, ssl_context=context, timeout=s.timeout_seconds
        )
        try:
            if not s.tls and s.starttls:
                client.starttls(context)
            client.login(s.user or "", s.password or "")
        except BaseException:
            with contextlib.suppress(IMAPClientError, OSError):
                client.shutdown()
            raise
        return client

    def _prepare(self, client: IMAPClient) -> str | None:
        """Select the folder; the processed folder to move to, created if missing (None: flag instead)."""
        processed = self._settings.processed_folder
        if processed:
            try:
                if not client.folder_exists(processed):
                    client.create_folder(processed)
            except IMAPClientError:
                log.warning("imap.processed_folder_unusable", extra={"folder": processed}, exc_info=True)
                processed = None
        client.select_folder(self._settings.folder)
        return processed

    def _drain(self, client: IMAPClient, processed: str | None, result: PollResult) -> None:
        uids = client.search(["NOT", "DELETED", "NOT", "KEYWORD", STORED_KEYWORD, "NOT", "KEYWORD", SET_ASIDE_KEYWORD])
        for uid in sorted(uids)[: self._settings.batch_size]:
            fetched = client.fetch([uid], ["BODY.PEEK[]"])
            raw = fetched.get(uid, {}).get(b"BODY[]")
            if raw is None:
                continue  # expunged meanwhile (another worker took it)
            result.fetched += 1
            try:
                new = self._store(bytes(raw))
            except SetAside as exc:
                # This message will never be stored: flag it for people and go on with the next.
                log.warning("imap.set_aside", extra={"uid": uid, "folder": self._settings.folder, "reason": str(exc)})
                client.add_flags([uid], [_FLAGGED, SET_ASIDE_KEYWORD], silent=True)
                result.set_aside += 1
                continue
            if not new:
                result.duplicates += 1
            # Only once stored (committed) does the message leave the folder.
            if self._file_away(client, uid, processed):
                result.moved += 1
            else:
                result.flagged += 1

    def _file_away(self, client: IMAPClient, uid: int, processed: str | None) -> bool:
        if processed:
            try:
                if client.has_capability("MOVE"):
                    client.move([uid], processed)
                else:
                    client.copy([uid], processed)
                    client.add_flags([uid], [_DELETED], silent=True)
                    if client.has_capability("UIDPLUS"):
                        client.uid_expunge([uid])
                    else:
                        client.expunge()
                return True
            except IMAPClientError:
                log.warning("imap.move_failed", extra={"uid": uid, "folder": processed}, exc_info=True)
        client.add_flags([uid], [_SEEN, STORED_KEYWORD], silent=True)
        return False

    @staticmethod
    def _idle(client: IMAPClient, seconds: float) -> bool:
        """Wait in IDLE up to ``seconds``; True when new mail was announced."""
        client.idle()
        try:
            responses = client.idle_check(timeout=seconds)
        finally:
            client.idle_done()
        return any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses)
