// consentinel operator console: casework (the data-subject lookup, the signed evidence pack).
// Loaded after app.js and uses its helpers (el, $, api, isoShort, CSRF, showView,
// openIncident). Every value from the server is put in the page as text (never as HTML).
"use strict";

(() => {
  // -- the data-subject lookup --------------------------------------------------------------------
  function rows(items, columns, emptyText) {
    if (!items.length) return el("p", { class: "empty", text: emptyText });
    return el("div", { class: "table-wrap" }, el("table", {},
      el("thead", {}, el("tr", {}, ...columns.map(([, label]) => el("th", { text: label })))),
      el("tbody", {}, ...items.map((item) => el("tr", {},
        ...columns.map(([key]) => {
          const v = typeof key === "function" ? key(item) : item[key];
          return el("td", { text: v == null || v === "" ? "—" : String(v) });
        }))))));
  }
  function lookupMessage(text, kind) {
    const m = $("lookup-message");
    m.textContent = text;
    m.className = "message " + (kind || "");
  }
  function renderFile(file) {
    $("lookup-ref").textContent = file.subject_ref;
    $("lookup-consent").replaceChildren(rows(file.consent,
      [[(c) => isoShort(c.at), "when"], ["controller", "controller"], ["action", "action"],
       [(c) => (c.purposes.length ? c.purposes.join(", ") : "all"), "purposes"],
       ["source", "via"], [(c) => c.proof || "no proof", "proof"], ["hint", "address (masked)"]],
      "No consent event on record."));
    $("lookup-uses").replaceChildren(rows(file.uses,
      [[(u) => isoShort(u.at), "when"], ["controller", "controller"], ["kind", "kind"],
       ["campaign_id", "campaign"], ["source", "via"]],
      "No use on record (the usage topic keeps 30 days)."));
    $("lookup-holds").replaceChildren(rows(file.holds,
      [[(h) => isoShort(h.at), "used at"], ["state", "held"], ["controller", "controller"],
       ["campaign_id", "campaign"],
       [(h) => (h.state === "pending" ? `until ${isoShort(h.until)}`
         : Object.entries(h.rules).map(([r, s]) => `${r} ${s}`).join(", ")), "why"]],
      "No use held by the worker."));
    $("lookup-alerts").replaceChildren(rows(file.alerts,
      [[(a) => isoShort(a.at), "detected"], ["rule_id", "rule"], ["status", "status"],
       ["controller", "controller"], ["summary", "summary"]],
      "No alert about this person."));
    const incidents = rows(file.incidents, [["incident_id", "incident"], ["status", "status"]],
      "No incident.");
    incidents.querySelectorAll("tbody tr").forEach((tr, i) => {
      const id = file.incidents[i].incident_id;
      tr.dataset.id = id;
      tr.classList.add("link");
      tr.addEventListener("click", () => { showView("incidents"); openIncident(id, true); });
    });
    $("lookup-incidents").replaceChildren(incidents);
    $("lookup-result").hidden = false;
  }
  async function lookUp(event) {
    event.preventDefault();
    const who = $("operator").value.trim();
    if (!who) {
      $("operator").classList.add("needed");
      $("operator").focus();
      lookupMessage("Type your name first (top right): every lookup is recorded with it.", "error");
      return;
    }
    const input = $("lookup-address");
    const address = input.value.trim();
    if (!address) {
      lookupMessage("Type the e-mail address or phone number to look up.", "error");
      return;
    }
    $("lookup-go").disabled = true;
    $("lookup-result").hidden = true;
    lookupMessage("Looking up (and recording the lookup)…", "");
    try {
      const file = await api("/api/subjects/lookup", {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Consentinel-CSRF": CSRF },
        body: JSON.stringify({ address, who }),
      });
      input.value = "";  // the address leaves the page as soon as it was used
      renderFile(file);
      lookupMessage(`Lookup recorded on the audit topic as ${who}.`, "ok");
    } catch (err) {
      lookupMessage(err.message, "error");
    } finally {
      $("lookup-go").disabled = false;
    }
  }

  // -- the signed evidence pack of the incident shown -------------------------------------------
  function packLink() {
    const id = $("detail-body").dataset.id;
    const ref = $("d-case").value.trim();
    const a = $("dl-pack");
    if (id && ref) a.href = `/api/incidents/${encodeURIComponent(id)}/evidence-pack?case=${encodeURIComponent(ref)}`;
    else a.removeAttribute("href");
    return Boolean(id && ref);
  }
  function packClick(event) {
    if (!packLink()) {
      event.preventDefault();
      setMessage("Type the case reference first: the signed pack carries it.", "error");
      $("d-case").focus();
    }
  }

  $("lookup-form").addEventListener("submit", lookUp);
  $("d-case").addEventListener("input", packLink);
  $("dl-pack").addEventListener("click", packClick);
})();
