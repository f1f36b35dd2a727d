// consentinel operator console: plain JavaScript, no build step, nothing from the internet.
// Every value from the server is put in the page as text (never as HTML).
"use strict";

const CSRF = document.querySelector('meta[name="csrf"]').content;
const state = { filter: "active", incidents: new Map(), selected: null, lastSeq: 0, source: null,
  panelsTimer: null, view: "incidents" };

// -- small helpers ----------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}
const $ = (id) => document.getElementById(id);
function when(ms) {
  if (!ms) return "—";
  const d = new Date(ms);
  return d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}
function ago(ms) {
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}
function isoShort(s) { return s ? s.replace("T", " ").slice(0, 19) + " UTC" : ""; }
function fmt(n, digits = 0) {
  if (n == null) return "—";
  return Number(n).toLocaleString("en-GB", { maximumFractionDigits: digits });
}
function seconds(s) {
  if (s == null) return "—";
  return s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(s < 10 ? 2 : 0)} s`;
}
async function api(path, options = {}) {
  const resp = await fetch(path, { credentials: "same-origin", ...options });
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = { error: text }; }
  if (!resp.ok) {
    const msg = (body && body.error) || text || `HTTP ${resp.status}`;
    throw new Error(resp.status === 401 ? "Your session has expired: open the console's address with its ?token= again." : msg);
  }
  return body;
}
function setMessage(text, kind) {
  const m = $("d-message");
  m.textContent = text;
  m.className = "message " + (kind || "");
}

// -- the incident list --------------------------------------------------------------------------
function matchesFilter(inc) {
  if (state.filter === "active") return inc.status !== "resolved";
  if (state.filter === "resolved") return inc.status === "resolved";
  return true;
}
function renderList() {
  const list = $("incidents");
  const items = [...state.incidents.values()].filter(matchesFilter)
    .sort((a, b) => b.last_seen_ms - a.last_seen_ms || a.incident_id.localeCompare(b.incident_id));
  list.replaceChildren(...items.map(incidentItem));
  const empty = $("incidents-empty");
  empty.hidden = items.length > 0;
  if (!items.length) {
    const none = state.incidents.size === 0;
    empty.className = "empty good";
    empty.textContent = state.filter === "resolved"
      ? "No resolved incidents yet."
      : none ? "No incidents yet — the pipeline is healthy and no use of an address broke a rule."
             : "No open incidents — nothing needs you right now.";
  }
}
function incidentItem(inc) {
  const li = el("li", { "data-id": inc.incident_id, title: inc.summary || "" },
    el("div", { class: "line1" },
      el("span", { class: `sev ${inc.severity}`, text: inc.severity }),
      el("span", { class: "ctrl", text: inc.controller }),
      el("span", { class: `chip ${inc.status}`, text: inc.status })),
    el("div", { class: "summary-line", text: inc.summary || "" }),
    el("div", { class: "line2", text:
      `${ruleIds(inc).join(", ")} · ${inc.campaign_id || "no campaign"} · ${inc.alert_count} alert${inc.alert_count === 1 ? "" : "s"} · last seen ${ago(inc.last_seen_ms)}` }));
  if (inc.incident_id === state.selected) li.classList.add("selected");
  if (inc._flash) { li.classList.add("flash"); delete inc._flash; }
  li.addEventListener("click", () => openIncident(inc.incident_id, true));
  return li;
}
async function loadList() {
  const data = await api("/api/incidents?limit=500");
  state.incidents = new Map(data.incidents.map((i) => [i.incident_id, i]));
  state.lastSeq = data.last_seq;
  renderList();
  return data.last_seq;
}

// -- the live feed ------------------------------------------------------------------------------
function connectFeed(since) {
  if (state.source) state.source.close();
  const src = new EventSource(`/api/feed?since=${since}`);
  state.source = src;
  const live = $("live");
  src.addEventListener("hello", () => { live.className = "live on"; live.textContent = "live"; });
  src.addEventListener("change", (ev) => {
    const change = JSON.parse(ev.data);
    state.lastSeq = change.seq;
    const inc = change.incident;
    if (!inc) return;
    const known = state.incidents.get(inc.incident_id);
    if (!known || known.revision <= inc.revision) {
      inc._flash = true;
      state.incidents.set(inc.incident_id, inc);
      renderList();
      if (state.selected === inc.incident_id && (!known || known.revision < inc.revision)) {
        openIncident(inc.incident_id, false);
      }
    }
  });
  src.addEventListener("resync", () => loadList());
  src.onerror = () => { live.className = "live off"; live.textContent = "reconnecting…"; };
}

// -- one incident ---------------------------------------------------------------------------------
function ruleIds(inc) {
  return inc.rules && inc.rules.length ? inc.rules.map((r) => r.rule_id) : [inc.rule_id];
}
function ruleRows(inc) {
  // Every rule the incident's alerts break, with its counts and its legal source.
  const rules = inc.rules && inc.rules.length ? inc.rules : [{
    rule_id: inc.rule_id, rule_source: inc.rule_source, severity: inc.severity,
    alerts: inc.alert_count, resolved_alerts: inc.resolved_alert_count }];
  return rules.map((r) => el("tr", { "data-rule": r.rule_id },
    el("td", { text: r.rule_id }),
    el("td", { text: r.severity }),
    el("td", { class: "num", text: String(r.alerts) }),
    el("td", { class: "num", text: String(r.resolved_alerts) }),
    el("td", { class: "small", text: r.rule_source })));
}
function metaRow(dl, label, value) {
  dl.append(el("dt", { text: label }), el("dd", { text: value == null || value === "" ? "—" : String(value) }));
}
function consentCell(e) {
  const parts = [];
  if (e.consent_purposes.length) parts.push(`purposes: ${e.consent_purposes.join(", ")}`);
  if (e.consent_channels.length) parts.push(`channels: ${e.consent_channels.join(", ")}`);
  if (e.consent_recipients.length) parts.push(`partners: ${e.consent_recipients.join(", ")}`);
  if (e.consent_legal_basis) parts.push(`basis: ${e.consent_legal_basis}`);
  return el("td", {},
    parts.length ? el("div", { text: parts.join(" · ") }) : el("div", { class: "small", text: "nothing on record" }),
    e.consent_valid_from ? el("div", { class: "small", text: `since ${isoShort(e.consent_valid_from)}` }) : null);
}
function proofCell(e) {
  if (!e.proof_method && !e.proof_certificate_id && !e.proof_collection_point) {
    return el("td", { class: "small", text: "no proof on record" });
  }
  const lines = [
    e.proof_method,
    e.proof_collected_at && `collected ${isoShort(e.proof_collected_at)}`,
    e.proof_collection_point && `at ${e.proof_collection_point}`,
    e.proof_notice_version && `notice ${e.proof_notice_version}`,
    e.proof_certificate_id && `certificate ${e.proof_certificate_id}`,
    e.proof_vendor_receipt && `receipt ${e.proof_vendor_receipt}`,
  ].filter(Boolean);
  return el("td", {}, ...lines.map((t, i) => el("div", { class: i ? "small" : "", text: t })));
}
function evidenceRow(e) {
  return el("tr", { "data-alert": e.alert_id },
    el("td", {}, el("div", { text: isoShort(e.occurred_at) }),
      el("div", { class: "small", text: e.status === "resolved" ? "corrected" : "" })),
    el("td", {}, el("div", { class: "hint", text: e.hint }),
      el("div", { class: "small", text: `subject ${e.subject_ref}` })),
    el("td", {}, el("div", { text: e.source }), el("div", { class: "small", text: e.channel })),
    el("td", {}, el("div", { text: e.purpose_used || "not declared" }),
      el("div", { class: "small", text: e.declaration_id ? `declaration ${e.declaration_id}` : "" })),
    el("td", {}, el("div", { text: e.consent_state })),
    consentCell(e),
    proofCell(e),
    el("td", {}, el("div", { text: e.rule_id }), el("div", { class: "small", text: e.rule_source })));
}
async function openIncident(id, push) {
  state.selected = id;
  if (push && location.pathname !== `/incidents/${id}`) history.pushState({ id }, "", `/incidents/${id}`);
  document.querySelectorAll("#incidents li").forEach((li) =>
    li.classList.toggle("selected", li.dataset.id === id));
  let data;
  try {
    data = await api(`/api/incidents/${encodeURIComponent(id)}`);
  } catch (err) {
    $("detail-empty").hidden = false;
    $("detail-body").hidden = true;
    $("detail-empty").textContent = err.message;
    return;
  }
  if (state.selected !== id) return;
  const inc = data.incident;
  state.incidents.set(inc.incident_id, { ...(state.incidents.get(inc.incident_id) || {}), ...inc });
  $("detail-empty").hidden = true;
  $("detail-body").hidden = false;
  $("detail-body").dataset.id = id;
  $("detail-body").dataset.status = inc.status;
  $("d-title").textContent = `${ruleIds(inc).join(" + ")} · ${inc.controller}`;
  const chip = $("d-status");
  chip.textContent = inc.status;
  chip.className = `chip ${inc.status}`;
  $("d-summary").textContent = inc.summary;
  const dl = $("d-meta");
  dl.replaceChildren();
  metaRow(dl, ruleIds(inc).length > 1 ? "Rules" : "Rule", ruleIds(inc).join(", "));
  metaRow(dl, "Severity", inc.severity);
  metaRow(dl, "Controller", inc.controller);
  metaRow(dl, "Campaign", inc.campaign_id);
  metaRow(dl, "Purpose used", inc.purpose_used);
  metaRow(dl, "Channel", inc.channel);
  metaRow(dl, "Alerts", `${inc.alert_count} (${inc.resolved_alert_count} corrected)`);
  $("d-rules").tBodies[0].replaceChildren(...ruleRows(inc));
  metaRow(dl, "Opened", when(inc.opened_at_ms));
  metaRow(dl, "Last seen", when(inc.last_seen_ms));
  metaRow(dl, "Incident id", inc.incident_id);
  metaRow(dl, "Revision", inc.revision);
  $("btn-ack").disabled = inc.status !== "open";
  $("btn-resolve").disabled = inc.status === "resolved";
  $("dl-csv").href = `/api/incidents/${encodeURIComponent(id)}/evidence.csv`;
  $("dl-json").href = `/api/incidents/${encodeURIComponent(id)}/evidence.json`;
  $("d-history").replaceChildren(...inc.transitions.map((t) =>
    el("li", { text: `${when(t.at_ms)} — ${t.status} by ${t.who}${t.note ? ` — “${t.note}”` : ""}` })));
  $("d-count").textContent = data.evidence_count < inc.alert_count
    ? `(first ${data.evidence_count} of ${inc.alert_count}; the export holds them all)`
    : `(${data.evidence_count})`;
  $("d-evidence").tBodies[0].replaceChildren(...data.evidence.map(evidenceRow));
  renderList();
}
async function lifecycle(step) {
  const who = $("operator").value.trim();
  if (!who) {
    $("operator").classList.add("needed");
    $("operator").focus();
    setMessage("Type your name first (top right): the incident's history records who did what.", "error");
    return;
  }
  const id = state.selected;
  const button = $(step === "acknowledge" ? "btn-ack" : "btn-resolve");
  button.disabled = true;
  try {
    const data = await api(`/api/incidents/${encodeURIComponent(id)}/${step}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Consentinel-CSRF": CSRF },
      body: JSON.stringify({ who, note: $("d-note").value }),
    });
    $("d-note").value = "";
    state.incidents.set(id, data.incident);
    await openIncident(id, false);
    setMessage(step === "acknowledge" ? `Acknowledged by ${who}.` : `Resolved by ${who}.`, "ok");
  } catch (err) {
    setMessage(err.message, "error");
    await openIncident(id, false);
  }
}

// -- panels ---------------------------------------------------------------------------------------
function table(rows, columns, emptyText) {
  if (!rows.length) return el("p", { class: "empty", text: emptyText });
  const max = Math.max(...rows.map((r) => r.count), 1);
  return el("table", {},
    el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { text: c[1] })), el("th", { class: "num", text: "count" }), el("th", {}))),
    el("tbody", {}, ...rows.map((r) => el("tr", {},
      ...columns.map((c) => el("td", { text: r[c[0]] || "—" })),
      el("td", { class: "num", text: fmt(r.count) }),
      el("td", { style: "width:30%" }, el("div", { class: "bar", style: `width:${(100 * r.count / max).toFixed(1)}%` }))))));
}
function kv(pairs, emptyText) {
  const shown = pairs.filter((p) => p[1] !== undefined);
  if (!shown.length) return el("p", { class: "empty", text: emptyText });
  return el("table", {}, el("tbody", {}, ...shown.map(([k, v]) =>
    el("tr", {}, el("td", { text: k }), el("td", { class: "num", text: v })))));
}
function put(id, node) { $(id).replaceChildren(node); }
function renderPanels(p) {
  document.querySelectorAll(".read-at").forEach((n) => { n.textContent = `Read ${when(p.read_at_ms)}.`; });
  const f = p.flows;
  put("p-consumed", table(f.consumed, [["kind", "kind"], ["source", "source"], ["channel", "channel"]],
    "Nothing consumed yet — no connector has sent uses or consents since the worker started."));
  put("p-requests", table(f.requests, [["instance", "connector"], ["outcome", "outcome"]],
    "No webhook calls yet."));
  put("p-records", table(f.records, [["instance", "connector"], ["record", "record"]],
    "No records produced by connectors yet."));
  const c = p.coverage;
  put("p-share", c.share_with_consent == null
    ? el("p", { class: "empty", text: "No uses judged yet." })
    : el("div", {}, el("div", { class: "big-number", text: `${(100 * c.share_with_consent).toFixed(1)} %` }),
        el("div", { class: "muted", text: `of ${fmt(c.decided)} decided uses had consent for that purpose, controller and channel` })));
  put("p-verdicts", table(Object.entries(c.verdicts).map(([decision, count]) => ({ decision, count })),
    [["decision", "decision"]], "No verdicts yet."));
  put("p-findings", table(c.findings, [["rule", "rule"], ["decision", "decision"]],
    "No violations or warnings — every judged use had consent."));
  put("p-controllers", table(c.open_by_controller, [["controller", "controller"], ["uses", "uses"]],
    "No open incidents: no controller is using addresses outside their consent."));
  const h = p.health;
  put("p-endpoints", el("table", {}, el("tbody", {}, ...p.endpoints.map((e) => el("tr", {},
    el("td", { text: e.url }),
    el("td", { class: e.ok ? "up" : "down", text: e.ok ? `up (${e.series} series)` : `down: ${e.error}` }))))));
  put("p-workers", kv([
    ["waiting for consent (pending)", fmt(h.pending)],
    ["subjects in the consent ledger", fmt(h.ledger_subjects)],
    ["consent versions held", fmt(h.ledger_versions)],
    ["purpose declarations in force", fmt(h.declarations)],
  ], "No worker metrics."));
  put("p-lag", kv(Object.entries(h.consumer_lag).map(([t, v]) => [t, fmt(v)]),
    "No lag reported (is the worker running?)."));
  put("p-latency", kv([
    ["event to verdict, median", seconds(h.event_to_verdict.p50)],
    ["event to verdict, 99th percentile", seconds(h.event_to_verdict.p99)],
    ["ingest, median", seconds(h.ingest_latency.p50)],
    ["ingest, 99th percentile", seconds(h.ingest_latency.p99)],
  ], "No latency figures yet."));
  put("p-deadletters", table([...h.deadletters, ...h.worker_deadletters.map((r) => ({ source: r.topic, reason: r.reason, count: r.count }))],
    [["source", "source"], ["reason", "reason"]], "No dead letters — everything received was taken in."));
  put("p-auth", table(h.auth_failures, [["instance", "connector"], ["reason", "reason"]],
    "No authentication failures."));
  put("p-sinks", kv(Object.entries(h.sink_backlog).map(([s, v]) => [s, fmt(v)]),
    "No sinks configured: the console is the only place incidents appear."));
  const st = p.incidents.by_status || {};
  put("p-incidents", kv([["open", fmt(st.open || 0)], ["acknowledged", fmt(st.acknowledged || 0)],
    ["resolved", fmt(st.resolved || 0)], ["alerts stored", fmt(p.incidents.alerts)]], ""));
}
async function refreshPanels() {
  try {
    renderPanels(await api("/api/panels"));
  } catch (err) {
    document.querySelectorAll(".read-at").forEach((n) => { n.textContent = `Could not read the panels: ${err.message}`; });
  }
}

// -- navigation -----------------------------------------------------------------------------------
function showView(view) {
  state.view = view;
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.dataset.view === view));
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== `view-${view}`; });
  clearInterval(state.panelsTimer);
  if (view !== "incidents" && view !== "subjects") {
    refreshPanels();
    state.panelsTimer = setInterval(refreshPanels, 10000);
  }
}
function routeFromLocation() {
  const m = location.pathname.match(/^\/incidents\/([A-Za-z0-9_.:-]+)$/);
  if (m) { showView("incidents"); openIncident(m[1], false); }
}

async function start() {
  const operator = $("operator");
  operator.value = localStorage.getItem("consentinel.operator") || "";
  operator.addEventListener("input", () => {
    localStorage.setItem("consentinel.operator", operator.value.trim());
    operator.classList.remove("needed");
  });
  document.querySelectorAll(".tab").forEach((t) => t.addEventListener("click", () => showView(t.dataset.view)));
  document.querySelectorAll(".filter").forEach((b) => b.addEventListener("click", () => {
    state.filter = b.dataset.status || "all";
    document.querySelectorAll(".filter").forEach((x) => x.classList.toggle("active", x === b));
    renderList();
  }));
  $("btn-ack").addEventListener("click", () => lifecycle("acknowledge"));
  $("btn-resolve").addEventListener("click", () => lifecycle("resolve"));
  window.addEventListener("popstate", routeFromLocation);
  try {
    const since = await loadList();
    connectFeed(since);
  } catch (err) {
    $("incidents-empty").hidden = false;
    $("incidents-empty").textContent = err.message;
  }
  routeFromLocation();
}
start();
