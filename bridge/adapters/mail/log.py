"""The mailer used when no SMTP server is configured: the message goes to the log."""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import getaddresses

from bridge.adapters.mail import mask_address

log = logging.getLogger(__name__)


class LogMailer:
    """Logs ``mail.logged`` (subject, locale, masked recipient) and the text body at DEBUG.

    For development and for trying the bridge without a mail server; nothing is delivered.
    """

    def send(self, message: EmailMessage) -> None:
        recipients = [mask_address(addr) for _, addr in getaddresses(message.get_all("To", []))]
        log.info(
            "mail.logged",
            extra={
                "subject": str(message.get("Subject", "")),
                "locale": str(message.get("Content-Language", "")),
                "to": ", ".join(recipients),
                "message_id": str(message.get("Message-ID", "")),
            },
        )
        if log.isEnabledFor(logging.DEBUG):
            part = message.get_body(preferencelist=("plain",))
            body = part.get_content() if isinstance(part, EmailMessage) else ""
            log.debug("mail.body", extra={"message_id": str(message.get("Message-ID", "")), "body": body})
