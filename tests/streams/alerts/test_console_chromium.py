"""The real console (``consentinel console``, its own process) driven in headless Chromium:
an incident arrives on the live feed, the operator opens it, acknowledges it, resolves it and
downloads its evidence; the page and the download hold no raw address."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import cdp  # tests/streams/alerts is on pytest's pythonpath
import console_support as support
from aiohttp import web
from consentinel.streams.alerts.store import IncidentStore
from console_process import TOKEN, wait_ready


async def _worker_metrics(port: int) -> web.AppRunner:
    """A worker-like /metrics endpoint (catalog names) for the console's panels."""
    consumed = "consentinel_events_consumed_total"
    body = "\n".join(
        [
            f"# TYPE {consumed} counter",
            f'{consumed}{{topic="consentinel.usage.v1",source="mc-broker",channel="email"}} 1200',
            f'{consumed}{{topic="consentinel.consent.v1",source="news-cmp",channel="email"}} 800',
            f'{consumed}{{topic="consentinel.usage.v1",source="twilio-fr",channel="sms"}} 140',
            "# TYPE consentinel_verdicts_total counter",
            'consentinel_verdicts_total{decision="allowed",rule=""} 1100',
            'consentinel_verdicts_total{decision="violation",rule="R2"} 96',
            'consentinel_verdicts_total{decision="violation",rule="R5"} 4',
            "# TYPE consentinel_consumer_lag gauge",
            'consentinel_consumer_lag{topic="consentinel.usage.v1"} 12',
            "# TYPE consentinel_pending_usages gauge",
            "consentinel_pending_usages 3",
            "",
        ]
    )

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=body, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def test_operator_works_an_incident_in_chromium(console_proc, tmp_path: Path) -> None:
    base, db, metrics_port = console_proc
    metrics = await _worker_metrics(metrics_port)
    await wait_ready(base, tmp_path / "console.log")
    downloads = tmp_path / "downloads"
    try:
        async with cdp.chromium(tmp_path / "profile") as browser:
            await browser.allow_downloads(downloads)
            page = await browser.new_page()
            await page.navigate(f"{base}/?token={TOKEN}")
            assert await page.evaluate("location.search") == ""  # the token left the address
            await page.wait_for(
                "document.querySelector('#incidents-empty').textContent"
                ".startsWith('No incidents yet — the pipeline is healthy')",
                "the empty state of a quiet pipeline",
            )
            await page.wait_for(
                "document.querySelector('#live').textContent === 'live'", "the live feed"
            )
            with IncidentStore(db) as store:
                support.fill(
                    store, [*support.campaign_alerts()[:2], support.sms_after_stop_alert()]
                )
            await page.wait_for(
                "document.querySelectorAll('#incidents li').length === 2", "the two incidents"
            )
            assert await page.evaluate("document.querySelector('#incidents-empty').hidden")

            # One matter, two rules: the campaign's incident lists both, with their counts.
            with IncidentStore(db) as store:
                support.fill(store, [_campaign_r17_alert()])
            campaign_id = await page.evaluate(
                "[...document.querySelectorAll('#incidents li')]"
                ".find(li => li.querySelector('.ctrl').textContent === 'campaign-x').dataset.id"
            )
            await page.wait_for(
                f"document.querySelector('#incidents li[data-id=\"{campaign_id}\"] .line2')"
                ".textContent.startsWith('R2, R17 · cmp-2026-spring · 3 alerts')",
                "both rules on the incident list",
            )
            await page.click(f'#incidents li[data-id="{campaign_id}"]')
            await page.wait_for(
                "document.querySelectorAll('#d-rules tbody tr').length === 2", "the rules table"
            )
            rules = await page.evaluate(
                "[...document.querySelectorAll('#d-rules tbody tr')]"
                ".map(tr => [...tr.cells].slice(0, 4).map(td => td.textContent))"
            )
            assert rules == [["R2", "critical", "2", "0"], ["R17", "warning", "1", "0"]]
            assert await page.evaluate("document.querySelector('#d-title').textContent") == (
                "R2 + R17 · campaign-x"
            )

            # A new incident arrives while the operator watches: it appears on the feed.
            with IncidentStore(db) as store:
                support.fill(store, [_broker_alert()])
            item = "#incidents li[data-id] .ctrl"
            await page.wait_for(
                f"[...document.querySelectorAll({json.dumps(item)})]"
                ".some(e => e.textContent === 'list-broker-z')",
                "the new incident on the live feed",
            )
            new_id = await page.evaluate(
                "[...document.querySelectorAll('#incidents li')]"
                ".find(li => li.querySelector('.ctrl').textContent === 'list-broker-z').dataset.id"
            )
            await page.click(f'#incidents li[data-id="{new_id}"]')
            await page.wait_for(
                f"document.querySelector('#detail-body').dataset.id === {json.dumps(new_id)}"
                " && document.querySelectorAll('#d-evidence tbody tr').length === 1",
                "the incident's evidence",
            )
            assert await page.evaluate("location.pathname") == f"/incidents/{new_id}"
            evidence = await page.evaluate("document.querySelector('#d-evidence').innerText")
            assert "z***@e***.org" in evidence and "political_campaigning" in evidence
            assert "double_opt_in" in evidence and "R2" in evidence

            # Acknowledge: the console asks for a name first.
            await page.click("#btn-ack")
            await page.wait_for(
                "document.querySelector('#d-message').textContent.includes('Type your name')",
                "the request for a name",
            )
            await page.type_into("#operator", "Jane Martin")
            await page.type_into("#d-note", "calling the campaign owner")
            await page.click("#btn-ack")
            await page.wait_for(
                "document.querySelector('#d-status').textContent === 'acknowledged'",
                "the acknowledged status",
            )
            await page.click("#btn-resolve")
            await page.wait_for(
                "document.querySelector('#d-status').textContent === 'resolved'",
                "the resolved status",
            )
            history = await page.evaluate("document.querySelector('#d-history').innerText")
            assert "acknowledged by Jane Martin" in history and "resolved by Jane Martin" in history

            # The evidence, downloaded as a person would.
            await page.click("#dl-csv")
            done = await browser.wait_event(
                "Browser.downloadProgress", lambda p: p.get("state") == "completed"
            )
            assert done["state"] == "completed"
            files = [p for p in downloads.iterdir() if p.suffix == ".csv"]
            assert [f.name for f in files] == [f"consentinel-evidence-{new_id}.csv"]
            data = files[0].read_bytes()
            assert not support.privacy.raw_addresses(data)
            rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
            assert len(rows) == 1
            assert rows[0]["hint"] == "z***@e***.org"
            assert rows[0]["controller"] == "list-broker-z"
            assert rows[0]["consent_state"] == "given"
            assert rows[0]["proof_method"] == "double_opt_in"
            assert rows[0]["rule_id"] == "R2"

            # The list shows it resolved; the store agrees.
            await page.click('.filter[data-status="resolved"]')
            await page.wait_for(
                f"!!document.querySelector('#incidents li[data-id=\"{new_id}\"]')",
                "the incident under Resolved",
            )
            with IncidentStore(db) as store:
                inc = store.get_incident(new_id)
            assert inc is not None and inc.status.value == "resolved"
            assert [t.who for t in inc.transitions[1:]] == ["Jane Martin", "Jane Martin"]

            # The panels, then back to the incident for the screenshot.
            await page.click('.tab[data-view="coverage"]')
            await page.wait_for(
                "document.querySelector('#p-share').innerText.includes('91.7')",
                "the consent coverage panel",
            )
            await page.screenshot(tmp_path / "console-coverage.png")
            await page.click('.tab[data-view="health"]')
            await page.wait_for(
                "document.querySelector('#p-endpoints').innerText.includes('up (')",
                "the pipeline health panel",
            )
            shown = await page.evaluate(
                "[...document.querySelectorAll('.view')]"
                ".filter(v => getComputedStyle(v).display !== 'none').map(v => v.id)"
            )
            assert shown == ["view-health"]  # one view at a time
            health = await page.evaluate("document.querySelector('#view-health').innerText")
            assert "consentinel.usage.v1" in health and "No dead letters" in health
            await page.screenshot(tmp_path / "console-health.png")
            await page.click('.tab[data-view="incidents"]')
            await page.click('.filter[data-status=""]')
            await page.click(f'#incidents li[data-id="{new_id}"]')
            await page.wait_for(
                "document.querySelectorAll('#d-evidence tbody tr').length === 1", "the detail"
            )
            text = await page.evaluate("document.documentElement.outerHTML")
            assert not support.privacy.raw_addresses(text.encode())
            shot = await page.screenshot(tmp_path / "console.png")
            assert shot.stat().st_size > 10_000
            print(f"screenshot: {shot}")
    finally:
        await metrics.cleanup()


def _broker_alert():
    """A new controller renting the same readers: one alert, a new incident."""
    return support._alert(
        "zoe@example.org",
        support.Channel.EMAIL,
        rule="R2",
        source=support.R2_SOURCE,
        controller="list-broker-z",
        campaign="rented-list-42",
        n=77,
        consent=support.NEWSLETTER_CONSENT,
    )


def _campaign_r17_alert():
    """The campaign's first use breaks R17 too: the same incident, a second rule."""
    return support._alert(
        support.RAW_EMAILS[0],
        support.Channel.EMAIL,
        rule="R17",
        source="Code électoral art. L. 52-8",
        controller="campaign-x",
        campaign="cmp-2026-spring",
        n=0,
        consent=support.NEWSLETTER_CONSENT,
        severity=support.Severity.WARNING,
    )
