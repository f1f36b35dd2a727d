"""E-mail over SMTP, with the standard library's ``smtplib`` run in a thread.

One message per notification: the subject is the headline, the body the evidence summary
and the console link. ``Message-ID`` is derived from the idempotency key
(``<incident_id.revision@consentinel>``) and the key is repeated in
``X-Consentinel-Idempotency-Key``: a redelivery is the same message to mail systems.

SMTP 4xx, a dropped connection and a timeout are retriable; 5xx (recipient refused,
authentication failed) is permanent. Recipients and credentials never appear in logs.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING

from consentinel.streams.events.errors import RetriableError
from consentinel.streams.events.settings import Secret

from .base import Notification, PermanentDeliveryError, description, headline

if TYPE_CHECKING:
    from ..config import Options


class EmailSink:
    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        sender: str,
        to: list[str],
        security: str = "starttls",  # none | starttls | tls
        username: str | None = None,
        password: Secret | None = None,
        timeout_s: float = 20.0,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.sender = sender
        self.to = list(to)
        self.security = security
        self.username = username
        self._password = password
        self.timeout_s = timeout_s

    def message(self, n: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = headline(n.kind, n.incident)
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Date"] = formatdate(n.created_at_ms / 1000, usegmt=True)
        msg["Message-ID"] = f"<{n.incident.incident_id}.{n.incident.revision}@consentinel>"
        msg["X-Consentinel-Idempotency-Key"] = n.idempotency_key
        msg.set_content("\n".join(description(n.incident, n.link)) + "\n")
        return msg

    async def deliver(self, notification: Notification) -> None:
        await asyncio.to_thread(self._send, self.message(notification))

    def _send(self, msg: EmailMessage) -> None:
        where = f"{self.host}:{self.port}"
        try:
            smtp: smtplib.SMTP
            if self.security == "tls":
                smtp = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    timeout=self.timeout_s,
                    context=ssl.create_default_context(),
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if self.username and self._password is not None:
                    smtp.login(self.username, self._password.reveal().decode())
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            if all(400 <= c < 500 for c in codes):
                raise RetriableError(
                    f"sink {self.name}: {where} deferred the recipients ({codes}); will retry", 60
                ) from None
            raise PermanentDeliveryError(
                f"sink {self.name}: {where} refused {len(exc.recipients)} recipient(s) with "
                f"{codes}; check 'to' in the sinks file"
            ) from None
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise RetriableError(
                    f"sink {self.name}: {where} answered {exc.smtp_code}; will retry", 30
                ) from None
            what = "authentication" if exc.smtp_code in (530, 534, 535) else "the message"
            raise PermanentDeliveryError(
                f"sink {self.name}: {where} refused {what} with {exc.smtp_code}; check the "
                f"sink's username, password, sender and recipients"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise RetriableError(
                f"sink {self.name}: cannot talk to {where} ({type(exc).__name__}); will retry"
            ) from None

    async def close(self) -> None:
        return None


def from_options(name: str, opts: Options) -> EmailSink:
    security = opts.choice("security", "starttls", ("none", "starttls", "tls"))
    default_port = {"none": 25, "starttls": 587, "tls": 465}[security]
    username = opts.text("username", "") or None
    password = opts.secret("password", required=False)
    if username and password is None:
        opts.problem("'username' is set without 'password' (env:VARIABLE or file:/path)")
    to = opts.text_list("to")
    sender = opts.text("sender")
    for who in (*to, sender):
        if who and "@" not in who:
            opts.problem("'sender' and 'to' should be e-mail addresses")
            break
    return EmailSink(
        name,
        host=opts.text("host"),
        port=int(opts.number("port", default_port, 1, 65_535)),
        sender=sender,
        to=to,
        security=security,
        username=username,
        password=password,
        timeout_s=opts.number("timeout_seconds", 20.0, 1.0, 300.0),
    )
