"""Meta Lead Ads with lead retrieval: a ``leadgen`` notification (ids only) becomes the
lead's events, fetched from the Graph API with the page token (connectors.md §3.1 "Lead
retrieval"); and the Leads Center CSV export (``meta_export``).

Everything else is ``meta_lead_ads``'s (this connector is that one plus retrieval): the
handshake, ``X-Hub-Signature-256``, and the mapping of a lead object, which is reached only
through that connector's public behaviour (a lead object body, a JSONL row).

Per notification, every ``entry[].changes[]`` with ``field`` ``leadgen`` names a
``leadgen_id``; each is fetched, concurrently (at most 8 at once), as
``GET <graph_url>/<graph_version>/<leadgen_id>?fields=...&access_token=<page token>
&appsecret_proof=<HMAC-SHA256(app secret, token)>``, and the lead object mapped. Other fields
(``feed``...) add nothing. Outcomes of a fetch:

* 200 with a lead object: its events, the same ids as when the lead is posted or imported;
* a Graph error about the lead (it was deleted, it is not this page's: code 100...), or a
  lead that cannot be mapped: that change alone is refused (``ItemRejected``
  ``lead_unavailable`` / the mapping's code; its ids are dead-lettered, sealed) and the
  others are kept;
* a 5xx, a rate limit (codes 4, 17, 32, 613), a token or permission problem (190, 10, 200:
  fixable by the operator), a timeout or a network failure: ``GraphUnavailable`` (a
  ``RetriableError``) for the whole request, which is refused, so Meta delivers it again
  (it retries for about 36 hours).

The HTTP client is pluggable: anything with the :class:`GraphHttp` method, given to the
constructor (``http=``); the default, :class:`AiohttpGraphHttp`, keeps one aiohttp session.
``map_request`` is synchronous (it runs on the ingest server's thread pool, off its event
loop), so the fetches run on a private event loop thread and ``map_request`` waits for them.
The token and the answers are never logged nor put in a message.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import hashlib
import hmac
import threading
from collections.abc import Awaitable, Coroutine, Mapping, Sequence
from typing import Any, ClassVar, Final, Protocol, TypeVar

import aiohttp
from consentinel.connectors import toolkit as tk
from consentinel.connectors.builtin import meta_export
from consentinel.connectors.builtin.meta_leads import MetaLeadAdsConnector
from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput, RetriableError

GRAPH_URL: Final = "https://graph.facebook.com"
GRAPH_VERSION: Final = "v21.0"
LEAD_FIELDS: Final = (
    "id,created_time,field_data,custom_disclaimer_responses,form_id,ad_id,adset_id,"
    "campaign_id,platform,is_organic"
)
CONCURRENCY: Final = 8
#: Graph error codes that say "later", or "after the operator fixed the token/permission"
RETRY_CODES: Final = frozenset({1, 2, 4, 10, 17, 32, 190, 200, 341, 613})

T = TypeVar("T")


class GraphHttp(Protocol):
    """The HTTP client the retriever fetches through (pluggable)."""

    async def get_json(
        self, url: str, params: Mapping[str, str], timeout_s: float
    ) -> tuple[int, Any]:
        """``(status, decoded JSON body or None)``; raises ``OSError``/``TimeoutError``/
        ``aiohttp.ClientError`` when no answer came."""
        ...


class AiohttpGraphHttp:
    """The default client: one aiohttp session, opened on first use (on the loop that uses
    it), answers decoded with the one codec."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def get_json(
        self, url: str, params: Mapping[str, str], timeout_s: float
    ) -> tuple[int, Any]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(raise_for_status=False)
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with self._session.get(url, params=dict(params), timeout=timeout) as response:
            raw = await response.read()
        try:
            return response.status, codec.loads(raw) if raw.strip() else None
        except InvalidInput:
            return response.status, None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class GraphUnavailable(RetriableError):
    """The Graph API could not give the lead now; Meta's redelivery will try again."""


class LeadUnavailable(InvalidInput):
    """The Graph API refused one lead for good (deleted, not this page's...)."""

    def __init__(self, message: str) -> None:
        super().__init__("lead_unavailable", message)


class LeadRetriever:
    """Fetches lead objects by id (async). ``token`` is the page token."""

    def __init__(
        self,
        http: GraphHttp,
        *,
        token: bytes,
        app_secret: bytes,
        base_url: str = GRAPH_URL,
        version: str = GRAPH_VERSION,
        timeout_s: float = 10.0,
    ) -> None:
        self.http = http
        self.base = f"{base_url.rstrip('/')}/{version.strip('/')}"
        self.timeout_s = timeout_s
        text = token.decode("utf-8")
        proof = hmac.new(app_secret, token, hashlib.sha256).hexdigest()
        self._params = {"fields": LEAD_FIELDS, "access_token": text, "appsecret_proof": proof}

    async def lead(self, leadgen_id: str) -> dict[str, Any]:
        """The lead object; ``LeadUnavailable`` or ``GraphUnavailable``."""
        what = f"lead {leadgen_id}"
        try:
            status, data = await self.http.get_json(
                f"{self.base}/{leadgen_id}", self._params, self.timeout_s
            )
        except (TimeoutError, OSError, aiohttp.ClientError) as exc:
            # never the exception's text: it may hold the URL, and the URL the token
            raise GraphUnavailable(
                f"the Graph API did not answer for {what} ({type(exc).__name__})"
            ) from None
        error = data.get("error") if isinstance(data, dict) else None
        if status == 200 and isinstance(data, dict) and error is None:
            return data
        code = error.get("code") if isinstance(error, dict) else None
        kind = f"{status}" + (f", Graph error code {code}" if isinstance(code, int) else "")
        if status >= 500 or status == 429 or code in RETRY_CODES or status == 200:
            raise GraphUnavailable(f"the Graph API could not give {what} now ({kind})")
        raise LeadUnavailable(f"the Graph API refused {what} ({kind})")

    async def leads(self, ids: Sequence[str]) -> list[dict[str, Any] | LeadUnavailable]:
        """Each lead or why it is unavailable, in order; ``GraphUnavailable`` for all."""
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(leadgen_id: str) -> dict[str, Any] | LeadUnavailable:
            async with gate:
                try:
                    return await self.lead(leadgen_id)
                except LeadUnavailable as exc:
                    return exc

        return list(await asyncio.gather(*(one(i) for i in ids)))


class _LoopThread:
    """A private event loop on a daemon thread, started on first use: synchronous code
    (``map_request``) runs coroutines there and waits for them."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float) -> T:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="meta-graph", daemon=True).start()
                self._loop = loop
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise GraphUnavailable("the Graph API fetches took too long") from None

    def stop(self, closing: Coroutine[Any, Any, None]) -> None:
        """Run ``closing`` (closing a client's session), then stop the loop (at exit)."""
        if self._loop is None:
            closing.close()
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(closing, self._loop).result(2)
        self._loop.call_soon_threadsafe(self._loop.stop)


_LOOP = _LoopThread()
_DEFAULT_HTTP = AiohttpGraphHttp()  # used on _LOOP only
atexit.register(lambda: _LOOP.stop(_DEFAULT_HTTP.close()))


def leadgen_changes(data: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(leadgen_id, change value)`` of every ``leadgen`` change of a (valid) notification."""
    found: list[tuple[str, dict[str, Any]]] = []
    for entry in data.get("entry") or []:
        for change in entry.get("changes") or []:
            value = change.get("value")
            if change.get("field") != "leadgen":
                continue
            leadgen_id = value.get("leadgen_id")
            if isinstance(leadgen_id, bool) or not isinstance(leadgen_id, str | int):
                raise InvalidInput("missing_field", "entry[].changes[].value.leadgen_id is missing")
            text = str(leadgen_id).strip()
            if not text.isdigit():
                raise InvalidInput("bad_value", "entry[].changes[].value.leadgen_id is not an id")
            found.append((text, value))
    return found


class MetaLeadRetriever(MetaLeadAdsConnector):
    name = "meta_lead_retriever"
    title = "Meta Lead Ads with retrieval: leadgen ids fetched from the Graph API; CSV exports"
    events: ClassVar[tuple[str, ...]] = ("leadgen", "lead", "export row")
    event_time: ClassVar[str] = 'the lead\'s "created_time" (fetched, posted or exported)'
    config_schema: ClassVar[tuple[tk.ConfigField, ...]] = (
        *MetaLeadAdsConnector.config_schema,
        tk.ConfigField(
            "page_token",
            "page access token (permission leads_retrieval)",
            required=True,
            secret=True,
        ),
        tk.ConfigField("graph_url", "Graph API base URL", default=GRAPH_URL, kind="text"),
        tk.ConfigField("graph_version", "Graph API version", default=GRAPH_VERSION, kind="text"),
        tk.ConfigField(
            "fetch_timeout_s", "timeout of one lead fetch (s)", default=10, kind="number"
        ),
        tk.ConfigField(
            "export_consent_columns",
            "CSV export columns that are consent checkboxes (default: purpose_map keys)",
            default=[],
            kind="list",
        ),
    )

    def __init__(self, instance: tk.Instance, edge: tk.Edge, http: GraphHttp | None = None) -> None:
        super().__init__(instance, edge)
        self.http = http or _DEFAULT_HTTP
        self.timeout_s = float(instance.options.get("fetch_timeout_s") or 10)
        self.retriever: LeadRetriever | None = None  # made at the first notification

    def _fetcher(self) -> LeadRetriever:
        """The retriever (the secrets are read when the first notification comes: a dry run
        of lead objects needs no page token)."""
        if self.retriever is None:
            options = self.instance.options
            self.retriever = LeadRetriever(
                self.http,
                token=self.instance.secret("page_token"),
                app_secret=self.instance.secret("app_secret"),
                base_url=str(options.get("graph_url") or GRAPH_URL),
                version=str(options.get("graph_version") or GRAPH_VERSION),
                timeout_s=self.timeout_s,
            )
        return self.retriever

    def map_request(self, request: tk.Request) -> tk.Output:
        out = super().map_request(request)  # checks a notification; maps a lead object
        data = tk.json_object(request.body, "Meta payload")
        if "object" not in data and "entry" not in data:
            return out
        changes = leadgen_changes(data)
        if not changes:
            return out
        rounds = 1 + len(changes) // CONCURRENCY
        fetching = self._fetcher().leads([i for i, _ in changes])
        leads = self._wait(fetching, rounds * self.timeout_s + 5)
        for index, ((_, value), lead) in enumerate(zip(changes, leads, strict=True)):
            try:
                if isinstance(lead, LeadUnavailable):
                    raise lead
                out.extend(super().map_request(request.with_body(codec.dumps(lead))))
            except InvalidInput as exc:
                out.rejected.append(
                    tk.ItemRejected(index, exc.code, exc.message, codec.dumps(value))
                )
        return out

    def _wait(self, work: Awaitable[T], timeout_s: float) -> T:
        async def job() -> T:
            return await work

        return _LOOP.run(job(), timeout_s)

    def map_row(self, row: Mapping[str, Any]) -> tk.Output:
        """A Graph lead object (JSONL) or a Leads Center CSV export row."""
        if "field_data" in row:
            return super().map_row(row)
        listed = self.instance.options.get("export_consent_columns") or []
        columns = meta_export.consent_columns(row, listed, self.instance.purpose_map)
        return super().map_row(meta_export.lead_of_row(row, columns))
