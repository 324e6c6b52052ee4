"""Sending through an SMTP server with the standard library.

One connection per message: notifications are few, and a fresh connection cannot be a
stale one. Failures become ``RetryableError`` (the server may take it later) or
``PermanentError`` (it never will). Error texts never carry the password, and the
server's reply has every email address masked, so the reporter's address stays out of
logs and job errors.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.errors import MessageError
from email.message import EmailMessage

from bridge.adapters.mail import mask_address, mask_addresses
from bridge.errors import PermanentError, RetryableError

log = logging.getLogger(__name__)


class SmtpMailer:
    def __init__(
        self,
        *,
        host: str,
        port: int = 587,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        tls: bool = False,
        ca_file: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._starttls = starttls and not tls
        self._tls = tls
        self._ca_file = ca_file
        self._timeout = timeout

    def __repr__(self) -> str:  # no password in reprs, tracebacks or debuggers
        mode = "tls" if self._tls else "starttls" if self._starttls else "plain"
        return f"SmtpMailer(host={self._host!r}, port={self._port}, mode={mode}, user={self._username!r})"

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self._ca_file)

    def _connect(self) -> smtplib.SMTP:
        if self._tls:
            return smtplib.SMTP_SSL(self._host, self._port, timeout=self._timeout, context=self._context())
        return smtplib.SMTP(self._host, self._port, timeout=self._timeout)

    def send(self, message: EmailMessage) -> None:
        where = f"smtp {self._host}:{self._port}"
        stage = "connect"
        try:
            smtp = self._connect()
            try:
                if self._starttls:
                    stage = "starttls"
                    smtp.starttls(context=self._context())
                if self._username:
                    stage = "login"
                    smtp.login(self._username, self._password or "")
                stage = "send"
                try:
                    refused = smtp.send_message(message)
                except (MessageError, ValueError) as exc:  # UnicodeError is a ValueError
                    # The message cannot be written as it stands (a header no policy can fold, an
                    # address it cannot encode): it never will be, so no retries. Only the type: the
                    # text may quote the address.
                    raise PermanentError(f"{where}: the message cannot be written: {type(exc).__name__}") from None
            finally:
                _close(smtp)
        except smtplib.SMTPRecipientsRefused as exc:
            # Every recipient refused. Greylisting answers 450/451 here: that one is worth a retry.
            codes = sorted({code for code, _ in exc.recipients.values()})
            replies = "; ".join(_reply(code, text) for code, text in exc.recipients.values())
            error = f"{where}: recipient refused: {replies}"
            if codes and all(code >= 500 for code in codes):
                raise PermanentError(error) from None
            raise RetryableError(error) from None
        except smtplib.SMTPServerDisconnected as exc:
            raise RetryableError(f"{where}: {stage}: server disconnected: {_text(exc)}") from None
        except smtplib.SMTPResponseException as exc:
            # Sender refused, DATA refused, AUTH failed, connect greeting refused: the code decides.
            error = f"{where}: {stage}: {_reply(exc.smtp_code, exc.smtp_error)}"
            if 400 <= exc.smtp_code < 500:
                raise RetryableError(error) from None
            raise PermanentError(error) from None
        except smtplib.SMTPNotSupportedError as exc:
            # The server does not offer STARTTLS or AUTH: configuration, not an outage.
            raise PermanentError(f"{where}: {stage}: not supported by the server: {_text(exc)}") from None
        except smtplib.SMTPException as exc:
            raise PermanentError(f"{where}: {stage}: {_text(exc)}") from None
        except ssl.SSLCertVerificationError as exc:
            # Wrong or untrusted certificate: retried, since certificates get fixed, and visible in job errors.
            raise RetryableError(f"{where}: {stage}: certificate not trusted: {exc.verify_message}") from None
        except (TimeoutError, ConnectionError, ssl.SSLError, OSError) as exc:
            raise RetryableError(f"{where}: {stage}: {type(exc).__name__}: {_text(exc)}") from None
        if refused:  # some, not all, recipients refused; we send to one, so this is rare
            log.warning("mail.partly_refused", extra={"refused": [mask_address(a) for a in refused]})
        log.info("mail.sent", extra={"message_id": str(message.get("Message-ID", "")), "host": self._host})


def _close(smtp: smtplib.SMTP) -> None:
    """QUIT politely; once the message is accepted, a failing goodbye must not look like a failed send."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _reply(code: int, text: bytes | str) -> str:
    decoded = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {mask_addresses(' '.join(decoded.split()))}".strip()


def _text(exc: BaseException) -> str:
    return mask_addresses(str(exc)) or type(exc).__name__
