"""Webhook authentication: each platform's own scheme, as pure functions (connectors.md).

Every ``verify_*`` function takes the secret(s), the raw request parts it needs (body bytes, URL,
form parameters, headers) and returns None, or raises :class:`AuthenticationFailed` with a
``reason`` machine code. Configuration that cannot work raises :class:`AuthConfigError`.
Secrets may be a single value or a sequence (accepting old and new while rotating). Every
comparison is constant-time (``hmac.compare_digest``). Headers are looked up case-insensitively
in any mapping. Where a platform signs a timestamp, ``tolerance`` (seconds, default
:data:`DEFAULT_TOLERANCE` = 300) bounds its age and ``now`` (Unix seconds) can be injected.

The ``*_signature`` functions compute what the platform would send, for tests and sample
requests. Nothing here does I/O; only :mod:`.sendgrid` needs ``cryptography``.
"""

from ._common import DEFAULT_TOLERANCE, FormParams, Secret, Secrets, get_header
from .basic import basic_auth_header, verify_basic_auth
from .errors import REASONS, AuthConfigError, AuthenticationFailed, Reason
from .hmac_header import HmacHeaderScheme, hmac_header_signature, verify_hmac_header
from .lead_post import lead_post_signature, verify_lead_post
from .linkedin import (
    is_challenge_code,
    linkedin_challenge_reply,
    linkedin_challenge_response,
    linkedin_signature,
    verify_linkedin,
)
from .mandrill import mandrill_signature, verify_mandrill
from .meta import meta_signature, meta_subscription_challenge, verify_meta
from .one_click import is_one_click_body, one_click_token, verify_one_click_token
from .sendgrid import SendGridKey, load_sendgrid_key, verify_sendgrid
from .shared_token import verify_header_token, verify_shared_token, verify_url_token
from .twilio import twilio_signature, verify_twilio
from .vonage import VonageSigMethod, verify_vonage_sms, vonage_sms_signature
from .vonage_jwt import sign_vonage_jwt, verify_vonage_jwt

__all__ = [
    "DEFAULT_TOLERANCE",
    "REASONS",
    "AuthConfigError",
    "AuthenticationFailed",
    "FormParams",
    "HmacHeaderScheme",
    "Reason",
    "Secret",
    "Secrets",
    "SendGridKey",
    "VonageSigMethod",
    "basic_auth_header",
    "get_header",
    "hmac_header_signature",
    "is_challenge_code",
    "is_one_click_body",
    "lead_post_signature",
    "linkedin_challenge_reply",
    "linkedin_challenge_response",
    "linkedin_signature",
    "load_sendgrid_key",
    "mandrill_signature",
    "meta_signature",
    "meta_subscription_challenge",
    "one_click_token",
    "sign_vonage_jwt",
    "twilio_signature",
    "verify_basic_auth",
    "verify_header_token",
    "verify_hmac_header",
    "verify_lead_post",
    "verify_linkedin",
    "verify_mandrill",
    "verify_meta",
    "verify_one_click_token",
    "verify_sendgrid",
    "verify_shared_token",
    "verify_twilio",
    "verify_url_token",
    "verify_vonage_jwt",
    "verify_vonage_sms",
    "vonage_sms_signature",
]
