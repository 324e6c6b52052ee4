"""The IMAP poller against a real Dovecot on loopback, started here with a generated config.

Each test gets its own mailbox user. Messages are delivered with ``imaplib`` APPEND as that
user, exactly as a mail server would file them. Dovecot comes from `make test-deps` (Debian's
dovecot-imapd); without it the tests fail.
"""

from __future__ import annotations

import imaplib
import itertools
import logging
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient
from sqlalchemy import select

from bridge.adapters.mail.imap import STORED_KEYWORD, ImapPoller
from bridge.adapters.queue import IMAP_TASK
from bridge.adapters.store.models import InboundEmail, Ticket
from bridge.bootstrap import Deps
from bridge.config import ImapSettings
from tests.tools import require_program

PASSWORD = "imap-test-password"
_users = itertools.count(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Dovecot:
    root: Path
    imap_port: int
    imaps_port: int
    ca_file: Path
    uid: int
    gid: int

    def add_user(self) -> str:
        """A fresh, empty mailbox (users are all in the passwd-file from the start: Dovecot
        notices a changed file by its modification second, too coarse to add them as we go)."""
        user = f"user{next(_users)}"
        assert user in (self.root / "passwd").read_text(), "more tests than prepared mailbox users"
        return user

    def write_users(self, count: int) -> None:
        lines = []
        for n in range(1, count + 1):
            home = self.root / "home" / f"user{n}"
            home.mkdir(parents=True)
            os.chown(home, self.uid, self.gid)
            lines.append(f"user{n}:{{PLAIN}}{PASSWORD}:{self.uid}:{self.gid}::{home}\n")
        (self.root / "passwd").write_text("".join(lines))


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    binary = require_program("dovecot", "dovecot-imapd")
    openssl = require_program("openssl", "openssl")
    # Not under pytest's tmp_path: its parents are private to us, and Dovecot's mail processes
    # run as an unprivileged user when we are root.
    root = Path(tempfile.mkdtemp(prefix="bridge-dovecot-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        internal, login = "dovecot", "dovenull"
        account = pwd.getpwnam("dovecot")
        uid, gid = account.pw_uid, account.pw_gid
    else:
        internal = login = pwd.getpwuid(os.getuid()).pw_name
        uid, gid = os.getuid(), os.getgid()
    for sub in ("run", "state", "home"):
        (root / sub).mkdir()
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    key.chmod(0o644)
    imap_port, imaps_port = _free_port(), _free_port()
    config = root / "dovecot.conf"
    config.write_text(
        f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
first_valid_gid = 1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""
    )
    server = Dovecot(root=root, imap_port=imap_port, imaps_port=imaps_port, ca_file=cert, uid=uid, gid=gid)
    server.write_users(100)
    process = subprocess.Popen([binary, "-F", "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", imaps_port), timeout=1).close()
                socket.create_connection(("127.0.0.1", imap_port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
                    output = process.stdout.read().decode() if process.stdout else ""
                    pytest.fail(f"Dovecot did not start:\n{output}\n{log}")
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def user(dovecot: Dovecot) -> str:
    return dovecot.add_user()


def deliver(dovecot: Dovecot, user: str, *messages: bytes) -> None:
    """File messages into the user's INBOX with APPEND, as the user (stdlib imaplib)."""
    with imaplib.IMAP4("127.0.0.1", dovecot.imap_port) as conn:
        conn.login(user, PASSWORD)
        for message in messages:
            typ, _ = conn.append("INBOX", None, None, message)
            assert typ == "OK"


def folder(dovecot: Dovecot, user: str, name: str) -> list[tuple[bytes, tuple[bytes, ...]]]:
    """(Subject header, flags) of every message in a folder ([] if the folder does not exist)."""
    with IMAPClient("127.0.0.1", port=dovecot.imap_port, ssl=False) as client:
        client.login(user, PASSWORD)
        if not client.folder_exists(name):
            return []
        client.select_folder(name, readonly=True)
        uids = client.search(["NOT", "DELETED"])
        data = client.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]", "FLAGS"]) if uids else {}
        return [(data[u][b"BODY[HEADER.FIELDS (SUBJECT)]"].strip(), tuple(data[u][b"FLAGS"])) for u in sorted(data)]


def email_bytes(subject: str, *, sender: str = "anna@kunde.dk", message_id: str | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = f"Anna Jensen <{sender}>"
    message["To"] = "support@bridge.example"
    message["Subject"] = subject
    message["Message-ID"] = message_id or f"<{subject.replace(' ', '-')}@kunde.dk>"
    message["Date"] = "Wed, 25 Nov 2026 10:00:00 +0100"
    message.set_content("Siden viser kun en spinner, når jeg logger ind.\n")
    return message.as_bytes()


def imap_settings(dovecot: Dovecot, user: str, **overrides: Any) -> ImapSettings:
    values: dict[str, Any] = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": dovecot.imap_port,
        "tls": False,
        "starttls": False,
        "user": user,
        "password": PASSWORD,
        "idle_seconds": 0,
        "timeout_seconds": 10,
    }
    values.update(overrides)
    return ImapSettings.model_validate(values)


def recording_poller(settings: ImapSettings) -> tuple[ImapPoller, list[bytes]]:
    stored: list[bytes] = []

    def store(raw: bytes) -> bool:
        new = raw not in stored
        stored.append(raw)
        return new

    return ImapPoller(settings, store=store), stored


def run_email_jobs(deps: Deps) -> None:
    for job in sorted(deps.store.jobs(state="pending", limit=1000), key=lambda j: j.id):
        if job.kind == "process_email":
            deps.runner.run(job.id)


# --- the whole path --------------------------------------------------------------------------


def test_mailbox_messages_become_tickets_once_and_move_to_processed(
    dovecot: Dovecot, user: str, make_deps: Callable[..., Deps]
) -> None:
    """Two polls: each message is stored once, becomes one ticket, and ends up in Processed."""
    deps = make_deps(imap=imap_settings(dovecot, user).model_dump())
    assert deps.imap_poller is not None
    deliver(dovecot, user, email_bytes("Login virker ikke"), email_bytes("Rapporten mangler"))

    first = deps.imap_poller.poll()
    second = deps.imap_poller.poll()
    run_email_jobs(deps)

    assert (first.fetched, first.moved, second.fetched) == (2, 2, 0)
    with deps.store.session() as session:
        titles = sorted(session.scalars(select(Ticket.title)).all())
        sources = set(session.scalars(select(InboundEmail.source)).all())
    assert titles == ["Login virker ikke", "Rapporten mangler"]
    assert sources == {"imap"}
    assert folder(dovecot, user, "INBOX") == []
    assert [subject for subject, _ in folder(dovecot, user, "Processed")] == [
        b"Subject: Login virker ikke",
        b"Subject: Rapporten mangler",
    ]


def test_a_message_stored_before_a_crash_is_moved_without_a_second_ticket(
    dovecot: Dovecot, user: str, make_deps: Callable[..., Deps]
) -> None:
    """Stored but not moved (the worker died in between): the next poll moves it; still one ticket."""
    deps = make_deps(imap=imap_settings(dovecot, user).model_dump())
    assert deps.imap_poller is not None
    raw = email_bytes("Kan ikke eksportere")
    deliver(dovecot, user, raw)
    from bridge.pipeline.intake.email.process import Delivered

    deps.email_intake.store(Delivered(source="imap", raw=raw))  # the crashed poll got this far

    result = deps.imap_poller.poll()
    run_email_jobs(deps)

    assert (result.fetched, result.duplicates, result.moved) == (1, 1, 1)
    with deps.store.session() as session:
        assert len(session.scalars(select(Ticket)).all()) == 1
    assert folder(dovecot, user, "INBOX") == []


def test_the_worker_polls_the_mailbox_as_a_periodic_task(
    dovecot: Dovecot, user: str, make_deps: Callable[..., Deps]
) -> None:
    """With imap.enabled the worker's huey runs the IMAP poll every poll_minutes; without it, never."""

    def due(deps: Deps, minute: int) -> set[str]:
        return {task.name for task in deps.queue.huey.read_periodic(datetime(2026, 11, 25, 10, minute))}

    enabled = make_deps(imap=imap_settings(dovecot, user, poll_minutes=2).model_dump())
    assert IMAP_TASK in due(enabled, 4)
    assert IMAP_TASK not in due(enabled, 5)
    assert IMAP_TASK not in due(make_deps(), 4)


# --- transport security ----------------------------------------------------------------------


def test_implicit_tls_with_a_private_ca_file(dovecot: Dovecot, user: str) -> None:
    """IMAPS against the self-signed certificate works when imap.ca_file names it."""
    deliver(dovecot, user, email_bytes("Over TLS"))
    poller, stored = recording_poller(
        imap_settings(dovecot, user, port=dovecot.imaps_port, tls=True, ca_file=str(dovecot.ca_file))
    )
    assert poller.poll().fetched == 1
    assert b"Subject: Over TLS" in stored[0]


def test_starttls_with_a_private_ca_file(dovecot: Dovecot, user: str) -> None:
    """A plain connection is upgraded with STARTTLS before the password is sent."""
    deliver(dovecot, user, email_bytes("Over STARTTLS"))
    poller, stored = recording_poller(imap_settings(dovecot, user, starttls=True, ca_file=str(dovecot.ca_file)))
    assert poller.poll().fetched == 1
    assert len(stored) == 1


def test_an_untrusted_certificate_is_refused(dovecot: Dovecot, user: str) -> None:
    """Without the CA file the self-signed certificate fails verification: no silent fallback."""
    deliver(dovecot, user, email_bytes("Not read"))
    poller, stored = recording_poller(imap_settings(dovecot, user, port=dovecot.imaps_port, tls=True))
    with pytest.raises(ssl.SSLCertVerificationError):
        poller.poll()
    assert stored == []
    assert len(folder(dovecot, user, "INBOX")) == 1


# --- servers without MOVE, mailboxes without a processed folder -----------------------------


def test_without_move_messages_are_copied_and_expunged(
    dovecot: Dovecot, user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that does not offer MOVE: COPY to Processed, flag \\Deleted, expunge."""
    real = IMAPClient.has_capability
    monkeypatch.setattr(IMAPClient, "has_capability", lambda self, cap: cap != "MOVE" and real(self, cap))
    deliver(dovecot, user, email_bytes("Uden MOVE"))
    poller, _ = recording_poller(imap_settings(dovecot, user))
    assert poller.poll().moved == 1
    assert folder(dovecot, user, "INBOX") == []
    assert [s for s, _ in folder(dovecot, user, "Processed")] == [b"Subject: Uden MOVE"]
    assert poller.poll().fetched == 0


def test_without_a_processed_folder_messages_are_flagged_and_not_read_twice(dovecot: Dovecot, user: str) -> None:
    """processed_folder unset: the message stays, flagged \\Seen and $BridgeStored, and is skipped."""
    deliver(dovecot, user, email_bytes("Bliver liggende"))
    poller, stored = recording_poller(imap_settings(dovecot, user, processed_folder=None))
    assert poller.poll().flagged == 1
    assert poller.poll().fetched == 0
    ((subject, flags),) = folder(dovecot, user, "INBOX")
    assert subject == b"Subject: Bliver liggende"
    assert {b"\\Seen", STORED_KEYWORD.encode()} <= set(flags)
    assert len(stored) == 1


def test_a_store_failure_leaves_the_message_in_the_inbox(dovecot: Dovecot, user: str) -> None:
    """When storing fails (database down) the message is not moved: the next poll takes it."""
    deliver(dovecot, user, email_bytes("Database nede"))

    def broken(raw: bytes) -> bool:
        raise RuntimeError("database is down")

    with pytest.raises(RuntimeError):
        ImapPoller(imap_settings(dovecot, user), store=broken).poll()
    poller, stored = recording_poller(imap_settings(dovecot, user))
    assert poller.poll().moved == 1
    assert len(stored) == 1


def test_idle_takes_mail_that_arrives_during_the_poll(dovecot: Dovecot, user: str) -> None:
    """With IDLE offered, a message delivered while the poll waits is stored in the same poll."""
    poller, stored = recording_poller(imap_settings(dovecot, user, idle_seconds=4))
    later = threading.Timer(1.0, deliver, args=(dovecot, user, email_bytes("Kom under IDLE")))
    started = time.monotonic()
    later.start()
    try:
        result = poller.poll()
    finally:
        later.join()
    assert result.fetched == 1
    assert b"Subject: Kom under IDLE" in stored[0]
    assert time.monotonic() - started < 15


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_failed_poll_is_logged_and_the_next_run_tries_again(dovecot: Dovecot, user: str) -> None:
    """A refused login does not crash the worker's periodic task; the password is not logged."""
    from bridge.bootstrap import poll_quietly

    deliver(dovecot, user, email_bytes("Venter"))
    wrong, _ = recording_poller(imap_settings(dovecot, user, password="not-the-password"))
    handler, logger = Records(), logging.getLogger("bridge.bootstrap")
    logger.addHandler(handler)
    try:
        poll_quietly(wrong)()
    finally:
        logger.removeHandler(handler)
    (record,) = [r for r in handler.records if r.getMessage() == "imap.poll_failed"]
    assert "not-the-password" not in str(vars(record))
    poller, _ = recording_poller(imap_settings(dovecot, user))
    assert poller.poll().fetched == 1
