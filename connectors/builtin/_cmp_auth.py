"""How a consent-management platform's webhooks authenticate (didomi, onetrust): an
operator's choice (``auth``): a URL token, Basic credentials, a static bearer or header
token, or ``oauth``: the platform obtains a short-lived access token from our token endpoint
(``/hooks/<instance>/<token_path>``, OAuth client credentials, see
``connectors.auth.client_credentials``) and sends it as a bearer token.
"""

from __future__ import annotations

from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth import (
    basic_auth_header,
    verify_basic_auth,
    verify_header_token,
    verify_url_token,
)
from consentinel.connectors.auth import client_credentials as cc
from consentinel.streams.events.errors import InvalidInput

AUTH_MODES = ("token", "basic", "bearer", "header", "oauth")


def auth_mode(instance: tk.Instance, default: str = "token") -> str:
    mode = tk.option_text(instance, "auth", default)
    if mode not in AUTH_MODES:
        raise tk.AuthConfigError(
            f"instance {instance.name!r}: options.auth must be one of {', '.join(AUTH_MODES)}"
        )
    return mode


# -- OAuth client credentials (the CMP obtains a token from our token endpoint) ----------


def oauth_schema() -> tuple[tk.ConfigField, ...]:
    """The options of ``auth: oauth`` (see ``connectors.auth.client_credentials``)."""
    return (
        tk.option("client_id", "text", "OAuth client id given to the platform (auth oauth)"),
        *tk.rotating_secret(
            "client_secret",
            "OAuth client secret given to the platform (auth oauth)",
            required=False,
        ),
        tk.option(
            "token_path", "text", "last URL segment of the token endpoint (auth oauth)", "token"
        ),
        tk.option("token_ttl", "number", "access token lifetime, seconds (auth oauth)", 3600),
    )


def oauth_problems(instance: tk.Instance) -> list[str]:
    """What ``auth: oauth`` lacks, every problem at once (empty for other modes)."""
    if tk.option_text(instance, "auth", "") != "oauth":
        return []
    problems = []
    if not tk.option_text(instance, "client_id"):
        problems.append("options.client_id is required with auth oauth")
    if "client_secret" not in instance.secrets:
        problems.append("secret client_secret is required with auth oauth")
    ttl = instance.options.get("token_ttl", 3600)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 60 <= ttl <= cc.MAX_TTL_S:
        problems.append(f"options.token_ttl must be whole seconds from 60 to {cc.MAX_TTL_S}")
    return problems


def _ttl(instance: tk.Instance) -> int:
    ttl = instance.options.get("token_ttl", cc.DEFAULT_TTL_S)
    return ttl if isinstance(ttl, int) and not isinstance(ttl, bool) else cc.DEFAULT_TTL_S


def token_endpoint(instance: tk.Instance, request: tk.Request) -> tk.Response | None:
    """With ``auth: oauth``, the answer to a request to ``/hooks/<instance>/<token_path>``
    (the token endpoint); None for any other request. Bad input raises ``InvalidInput``
    (400) or ``AuthenticationFailed`` (401), never anything else."""
    if auth_mode(instance) != "oauth":
        return None
    path = request.path or ""
    if path.rstrip("/").rsplit("/", 1)[-1] != tk.option_text(instance, "token_path", "token"):
        return None
    if request.method.upper() != "POST":
        raise InvalidInput("invalid_request", "the token endpoint takes POST only")
    body = cc.token_response(
        client_id=tk.option_text(instance, "client_id"),
        secrets=tk.secrets(instance, "client_secret"),
        audience=instance.name,
        body=request.body,
        headers=request.headers,
        now_s=(request.received_at_ms or tk.Edge.now_ms()) // 1000,
        ttl_s=_ttl(instance),
    )
    return tk.Response(
        200,
        body,
        "application/json",
        headers={"cache-control": "no-store", "pragma": "no-cache"},
    )


def auth_schema(default: str, modes: str, token_doc: str) -> tuple[tk.ConfigField, ...]:
    """The options of :func:`verify`: ``auth`` (``modes``, ``default`` first), the token
    and its previous value, Basic credentials."""
    return (
        tk.option("auth", "text", modes, default),
        *tk.rotating_secret("token", token_doc, required=False),
        tk.ConfigField("password", "Basic password (auth basic)", secret=True),
        tk.option("username", "text", "Basic user name (auth basic)"),
    )


def verify(instance: tk.Instance, request: tk.Request, default: str = "token") -> None:
    """``token``: ``?token=`` in the URL (``options['token_param']``); ``basic``: Authorization
    Basic (``options['username']``, secret ``password``); ``bearer``: ``Authorization: Bearer``
    static token (secret ``token``); ``header``: the bare token in ``options['token_header']``."""
    mode = auth_mode(instance, default)
    if mode == "basic":
        username = str(instance.options.get("username") or "")
        verify_basic_auth(username, tk.secrets(instance, "password"), request.headers)
    elif mode == "oauth":
        cc.verify_client_token(
            tk.secrets(instance, "client_secret"),
            request.headers,
            audience=instance.name,
            now_s=(request.received_at_ms or tk.Edge.now_ms()) // 1000,
            ttl_s=_ttl(instance),
        )
    elif mode == "bearer":
        verify_header_token(tk.secrets(instance, "token"), request.headers)
    elif mode == "header":
        name = str(instance.options.get("token_header") or "X-Webhook-Token")
        verify_header_token(
            tk.secrets(instance, "token"), request.headers, header=name, auth_scheme=None
        )
    else:
        param = str(instance.options.get("token_param") or "token")
        verify_url_token(tk.secrets(instance, "token"), request.url, param=param)


def sign(request: tk.Request, instance: tk.Instance, default: str = "token") -> tk.Request:
    mode = auth_mode(instance, default)
    if mode == "basic":
        username = str(instance.options.get("username") or "")
        password = instance.secret("password").decode("utf-8")
        return request.with_headers({"authorization": basic_auth_header(username, password)})
    if mode == "oauth":  # the token the platform would have obtained just before
        secret = instance.secret("client_secret")
        now_s = (request.received_at_ms or tk.Edge.now_ms()) // 1000
        token = cc.issue_token(secret, instance.name, now_s=now_s, ttl_s=_ttl(instance))
        return request.with_headers({"authorization": f"Bearer {token}"})
    token = instance.secret("token").decode("utf-8")
    if mode == "bearer":
        return request.with_headers({"authorization": f"Bearer {token}"})
    if mode == "header":
        name = str(instance.options.get("token_header") or "X-Webhook-Token")
        return request.with_headers({name.lower(): token})
    param = str(instance.options.get("token_param") or "token")
    return request.with_query({param: token})
