"""Rendering the reporter emails: every kind and status in both languages, headers, start-up checks."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest

from bridge.adapters.mail import mask_address, mask_addresses
from bridge.adapters.mail.log import LogMailer
from bridge.adapters.store.models import Ticket
from bridge.domain import Kind, SprintSlot, Status
from bridge.errors import ConfigError
from bridge.mappings import Mappings
from bridge.pipeline.notifying.email import (
    EmailTemplates,
    Notifier,
    Outgoing,
    excerpt,
    format_date,
    message_id,
    reply_address,
    sprint_info,
)
from tests.conftest import REPO, make_settings

NOW = datetime(2026, 11, 25, 10, 15, tzinfo=UTC)
LEFTOVERS = ("{{", "}}", "{%", "%}", "{#", "#}", "None", "Undefined", "{kind}", "{sprint}", "{reason}")


@pytest.fixture
def notifier(tmp_path: Path, mappings: Mappings) -> Notifier:
    settings = make_settings(tmp_path, mail={"mail_from": "Kundeservice <support@example.com>"})
    return Notifier(store=None, mailer=LogMailer(), mappings=mappings, settings=settings,  # type: ignore[arg-type]
                    secret_key="k", clock=lambda: NOW)  # fmt: skip


def ticket(**overrides: Any) -> Ticket:
    values: dict[str, Any] = {
        "id": 1, "tracking_id": "ST-7K3Q9X2M", "status": "triaged", "channel": "chatbot", "locale": "da",
        "reporter_email": "anna@kunde.dk", "reporter_name": "Anna Jensen", "title": "Chat-widget indlæses ikke",
        "description": "Siden viser kun en spinner.", "impact": "Ingen kan skrive", "declared_priority": "Kritisk",
        "environment": {}, "attachments": [], "reply_token": "f" * 32, "severity": "critical", "kind": "hotfix",
        "planned": True, "sprint_slot": "current", "sprint_id": "11", "sprint_name": "Sprint 48",
        "sprint_start": date(2026, 11, 23), "sprint_due": date(2026, 12, 6), "status_reason": None,
        "notifications_muted": False, "created_at": NOW, "updated_at": NOW,
    }  # fmt: skip
    values.update(overrides)
    return Ticket(**values)


def compose(notifier: Notifier, kind: str, row: Ticket, *, announced: str | None = None, **extra: Any) -> EmailMessage:
    outgoing = Outgoing(notification_id=42, kind=kind, ticket=row, announced=announced, comment=extra.get("comment"),
                        thread=extra.get("thread", []))  # fmt: skip
    return notifier.compose(outgoing)


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert isinstance(text, EmailMessage)
    assert isinstance(html, EmailMessage)
    return text.get_content(), html.get_content()


def assert_fully_rendered(*bodies: str) -> None:
    for body in bodies:
        for leftover in LEFTOVERS:
            assert leftover not in body, leftover


# --- every kind, every status, both languages -----------------------------------------------


@pytest.mark.parametrize("locale", ["da", "en"])
@pytest.mark.parametrize("status", list(Status))
def test_every_status_email_renders_in_both_languages(
    notifier: Notifier, mappings: Mappings, locale: str, status: Status
) -> None:
    """Subject is the status text; both parts are complete, in the reporter's language, nothing unrendered."""
    row = ticket(locale=locale, status=status.value, status_reason="duplicate" if status is Status.DECLINED else None)
    msg = compose(notifier, "status", row, announced=status.value)
    expected = mappings.wording[locale].text(
        status, kind=Kind.HOTFIX, slot=SprintSlot.CURRENT, sprint="Sprint 48", reason="duplicate"
    )
    assert msg["Subject"] == f"[ST-7K3Q9X2M] {expected}"
    assert msg["Content-Language"] == locale
    text, html = parts(msg)
    assert_fully_rendered(msg["Subject"], text, html)
    assert text.startswith("Hej Anna\n\n" if locale == "da" else "Hi Anna,\n\n")
    assert f'<html lang="{locale}">' in html
    assert "https://bridge.example/t/ST-7K3Q9X2M?s=" in text
    assert "https://bridge.example/u/ST-7K3Q9X2M?s=" in html


@pytest.mark.parametrize("locale", ["da", "en"])
@pytest.mark.parametrize("kind", ["ack", "comment", "plan"])
def test_every_other_kind_renders_in_both_languages(notifier: Notifier, locale: str, kind: str) -> None:
    """Acknowledgement, comment and re-plan emails are complete in both languages."""
    row = ticket(locale=locale, status="received" if kind == "ack" else "in_progress")
    msg = compose(notifier, kind, row, announced="received" if kind == "ack" else None, comment="Prøv igen i morgen.")
    text, html = parts(msg)
    assert_fully_rendered(msg["Subject"], text, html)
    assert msg["Subject"].startswith("[ST-7K3Q9X2M] ")
    if kind == "comment":
        assert "Prøv igen i morgen." in text
        assert "Prøv igen i morgen." in html
    if kind == "ack":
        assert "Chat-widget indlæses ikke" in text
        assert "Kritisk" in html


@pytest.mark.parametrize(
    ("locale", "phrase"), [("da", "ikke planlagt i en bestemt sprint"), ("en", "not been planned")]
)
def test_triaged_without_a_sprint_says_it_waits_to_be_planned(notifier: Notifier, locale: str, phrase: str) -> None:
    """No sprint could be chosen: the email says so instead of naming an empty sprint."""
    row = ticket(locale=locale, sprint_slot=None, sprint_id=None, sprint_name=None, sprint_start=None, sprint_due=None)
    text, html = parts(compose(notifier, "status", row, announced="triaged"))
    assert phrase in text
    assert phrase in html
    assert_fully_rendered(text, html)


def test_declined_without_a_reason_still_reads_as_a_sentence(notifier: Notifier) -> None:
    """A decline without a recorded reason never renders "Closed without a fix:" with nothing after it."""
    msg = compose(notifier, "status", ticket(locale="en", status="declined"), announced="declined")
    assert not msg["Subject"].rstrip().endswith(":")


def test_missing_reporter_name_greets_without_one(notifier: Notifier) -> None:
    """No name: "Hej" / "Hello," alone, never "Hej None"."""
    da_text, _ = parts(compose(notifier, "status", ticket(reporter_name=None), announced="in_qa"))
    en_text, _ = parts(compose(notifier, "status", ticket(reporter_name=" ", locale="en"), announced="in_qa"))
    assert da_text.startswith("Hej\n\n")
    assert en_text.startswith("Hello,\n\n")


def test_unknown_locale_falls_back_to_english(notifier: Notifier) -> None:
    """A stored locale without templates is written to in English."""
    msg = compose(notifier, "status", ticket(locale="sv"), announced="resolved")
    assert msg["Subject"] == "[ST-7K3Q9X2M] The problem has been fixed"


def test_html_part_escapes_reporter_text(notifier: Notifier) -> None:
    """Reporter-written title and name are inert text in HTML, verbatim in the text part."""
    payload = "<script>alert(1)</script>"
    row = ticket(title=payload, reporter_name="<b>Eve</b>", status="received")
    text, html = parts(compose(notifier, "ack", row, announced="received"))
    assert payload in text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;Eve&lt;/b&gt;" in html


# --- headers --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.REOPENED, Status.IN_QA])
def test_danish_subject_survives_the_wire_as_rfc2047(notifier: Notifier, status: Status) -> None:
    """Serialised, the subject is ASCII encoded-words; parsed back it is the Danish text again."""
    msg = compose(notifier, "status", ticket(status=status.value), announced=status.value)
    wire = msg.as_bytes()
    headers = wire.split(b"\r\n\r\n", 1)[0]
    assert headers.isascii()
    parsed = message_from_bytes(wire, policy=default)
    assert parsed["Subject"] == msg["Subject"]
    text, _ = parts(parsed)  # type: ignore[arg-type]
    assert text.replace("\r\n", "\n") == parts(msg)[0]  # the wire has CRLF line ends
    if status is Status.REOPENED:
        assert b"=?utf-8?" in headers
        assert parsed["Subject"] == "[ST-7K3Q9X2M] Sagen er genåbnet"


def test_threading_and_identity_headers(notifier: Notifier) -> None:
    """Message-ID is deterministic; In-Reply-To the previous email; References the first and previous."""
    thread = ["<st-7k3q9x2m.n1@example.com>", "<st-7k3q9x2m.n5@example.com>", "<st-7k3q9x2m.n9@example.com>"]
    msg = compose(notifier, "status", ticket(status="in_qa"), announced="in_qa", thread=thread)
    assert msg["Message-ID"] == "<st-7k3q9x2m.n42@example.com>"
    assert msg["In-Reply-To"] == "<st-7k3q9x2m.n9@example.com>"
    assert msg["References"] == "<st-7k3q9x2m.n1@example.com> <st-7k3q9x2m.n9@example.com>"
    assert msg["Reply-To"] == "support+" + "f" * 32 + "@example.com"
    assert msg["Date"] == "Wed, 25 Nov 2026 10:15:00 +0000"
    again = compose(notifier, "status", ticket(status="in_qa"), announced="in_qa", thread=thread)
    assert again["Message-ID"] == msg["Message-ID"]


def test_reply_address_and_message_id_helpers() -> None:
    """Reply-To: configured pattern, else derived from MAIL_FROM; the plain sender without a token."""
    assert reply_address("Support <help@acme.dk>", None, "abc") == "help+abc@acme.dk"
    assert reply_address("help@acme.dk", "svar+{token}@reply.acme.dk", "abc") == "svar+abc@reply.acme.dk"
    assert reply_address("Support <help@acme.dk>", None, None) == "help@acme.dk"
    assert message_id("ST-ABCDEFGH", 7, "acme.dk") == "<st-abcdefgh.n7@acme.dk>"


# --- small helpers --------------------------------------------------------------------------


def test_dates_are_written_per_locale() -> None:
    """Danish "6. december 2026", English "6 December 2026"; the start drops a shared year."""
    assert format_date(date(2026, 12, 6), "da") == "6. december 2026"
    assert format_date(date(2026, 12, 6), "en") == "6 December 2026"
    same = sprint_info("Sprint 48", date(2026, 11, 23), date(2026, 12, 6), "da")
    assert same is not None
    assert (same.start_text, same.due_text) == ("23. november", "6. december 2026")
    across = sprint_info("Sprint 52", date(2026, 12, 28), date(2027, 1, 10), "en")
    assert across is not None
    assert (across.start_text, across.due_text) == ("28 December 2026", "10 January 2027")
    assert sprint_info(None, None, None, "da") is None


def test_excerpt_is_one_short_line() -> None:
    """Whitespace collapsed; long text cut at a word with an ellipsis."""
    assert excerpt("a\n\n b  c") == "a b c"
    long = excerpt("ord " * 200)
    assert len(long) <= 301
    assert long.endswith("ord…")


def test_addresses_are_masked_for_logs() -> None:
    """a***@domain, in single addresses and in server replies."""
    assert mask_address("anna@kunde.dk") == "a***@kunde.dk"
    assert mask_addresses("550 5.1.1 <anna.j@kunde.dk>: unknown") == "550 5.1.1 <a***@kunde.dk>: unknown"


# --- template problems surface at start-up --------------------------------------------------


@pytest.fixture
def templates_copy(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(REPO / "mappings" / "templates", target)
    return target


def test_template_syntax_error_is_a_config_error_with_file_and_line(templates_copy: Path, mappings: Mappings) -> None:
    """A broken tag stops the start-up, naming the file and the line."""
    path = templates_copy / "da" / "email" / "status.txt.j2"
    lines = path.read_text().split("\n")
    lines.insert(2, "{% if status == %}")
    path.write_text("\n".join(lines))
    with pytest.raises(ConfigError) as caught:
        EmailTemplates(templates_copy, mappings.wording)
    assert f"{path}:3" in str(caught.value)


def test_misspelt_variable_is_a_config_error_with_file_and_line(templates_copy: Path, mappings: Mappings) -> None:
    """An undefined name fails the sample rendering at start-up, not the first real email."""
    path = templates_copy / "en" / "email" / "comment.html.j2"
    text = path.read_text().replace("{{ comment | paragraphs }}", "{{ coment | paragraphs }}")
    path.write_text(text)
    line = next(i for i, row in enumerate(text.split("\n"), 1) if "coment" in row)
    with pytest.raises(ConfigError) as caught:
        EmailTemplates(templates_copy, mappings.wording)
    assert f"{path}:{line}" in str(caught.value)
    assert "coment" in str(caught.value)


def test_missing_template_is_a_config_error(templates_copy: Path, mappings: Mappings) -> None:
    """Every kind needs a text and an HTML template in every locale."""
    (templates_copy / "da" / "email" / "plan.html.j2").unlink()
    with pytest.raises(ConfigError, match=r"plan\.html\.j2: template missing"):
        EmailTemplates(templates_copy, mappings.wording)


def test_shipped_templates_pass_the_start_up_check(mappings: Mappings) -> None:
    """The templates in mappings/ load and render without problems."""
    EmailTemplates(mappings.templates_dir, mappings.wording)
