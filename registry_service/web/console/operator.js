// node-registry console, part three: the operator's panels and actions. Reads need a token with
// admin:read when the registry has tokens; actions always need one with admin:write (this port
// takes none without it, even on a registry without tokens). Every action is confirmed first and
// goes through the admin port's own handlers, mounted under /v1/cluster/, which audit it with the
// token's name, exactly as `noderegistry admin` does.
"use strict";

const PANEL_REFRESH_MS = 5000;
const ACTION_TEXT = {
  maintenance: (key) => `Put ${key} in maintenance (OUT_OF_SERVICE)? Watchers see it UPDATED and pickers skip it until it is cleared.`,
  drain: (key) => `Drain ${key} (DRAINING)? Clients stop sending it new work; it stays registered.`,
  clear: (key) => `Clear the operator's status of ${key}? It goes back to its owner's own status.`,
  evict: (key, hold) => `Evict ${key} now (REMOVED, reason EVICTED)?${hold > 0 ? ` Its id is refused for ${hold}s.` : " Its owner registers it again at its next renewal."}`,
  unhold: (key) => `Lift the eviction hold of ${key}?`,
};
const panels = { convergence: null, frontends: null };

async function fetchJson(path, options = {}) {
  const headers = { ...authHeaders(), ...(options.body ? { "Content-Type": "application/json" } : {}) };
  const response = await fetch(path, { cache: "no-store", ...options, headers });
  if (response.ok) return { ok: true, body: await response.json() };
  return { ok: false, status: response.status, message: await errorMessage(response) };
}

function refusal(target, answer) {
  const text = answer.status === 401 || answer.status === 403
    ? `Needs a token with the admin:read scope (${answer.message}). Without one the console shows the nodes only.`
    : `Not available: ${answer.message}`;
  target.replaceChildren(element("p", { class: "note", text }));
}

function table(columns, rows) {
  const head = element("tr");
  for (const column of columns) head.append(element("th", { scope: "col", text: column }));
  const body = element("tbody");
  for (const row of rows) {
    const line = element("tr");
    for (const cell of row) line.append(cell instanceof Node ? element("td", {}, cell) : element("td", { text: String(cell) }));
    body.append(line);
  }
  return element("table", {}, element("thead", {}, head), body);
}

function yesNo(value) {
  return element("span", { class: value ? "yes" : "no", text: value ? "yes" : "no" });
}

// -- confirmation ---------------------------------------------------------------------------

function confirmed(text) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  return new Promise((resolve) => {
    const done = (answer) => {
      $("confirm-ok").removeEventListener("click", ok);
      $("confirm-cancel").removeEventListener("click", cancel);
      dialog.removeEventListener("cancel", cancel);
      dialog.close();
      resolve(answer);
    };
    const ok = () => done(true);
    const cancel = () => done(false);
    $("confirm-ok").addEventListener("click", ok);
    $("confirm-cancel").addEventListener("click", cancel);
    dialog.addEventListener("cancel", cancel); // Escape
    dialog.showModal();
  });
}

// Writes the outcome of an action in the element of id `resultId` (looked up when written: a
// panel refresh may have replaced it while the dialog was open).
function report(resultId, text, outcome = "") {
  const target = $(resultId);
  if (!target) return;
  target.textContent = text;
  target.className = `result ${outcome}`.trim();
}

// Confirms, then sends; reports a refusal or a cancellation and returns the answer (or null).
async function act(text, method, path, body, resultId) {
  if (!(await confirmed(text))) {
    report(resultId, "Cancelled: nothing was sent.");
    return null;
  }
  const answer = await fetchJson(path, { method, body: JSON.stringify(body) });
  if (!answer.ok) {
    report(resultId, answer.status === 401 || answer.status === 403
      ? `Refused: a token with the admin:write scope is needed (${answer.message})`
      : `Failed: ${answer.message}`, "failed");
    return null;
  }
  return answer.body;
}

// -- the selected node: metadata, actions, audit trail ---------------------------------------

function nodePath(key) {
  return key.split("/").map(encodeURIComponent).join("/");
}

function paintNodeDetail() {
  const key = state.selected;
  const target = $("node-detail");
  if (!key) return;
  const node = state.nodes.get(key);
  if (!node) {
    target.replaceChildren(element("p", { "data-detail-node": key, text: `${key} is not a member (any more): its audit trail says why.` }));
    return;
  }
  if (target.shown === node) return;
  target.shown = node;
  const metadata = Object.entries(node.metadata || {}).sort(([a], [b]) => a.localeCompare(b));
  target.replaceChildren(
    element("p", { class: "detail-head", "data-detail-node": key }, element("strong", { text: key }), " ", statusBadge(node.status)),
    table(["field", "value"], [
      ["address", node.address],
      ["incarnation", node.incarnation],
      ["health", `${node.health || "UNCHECKED"}${node.damped ? " (damped: held out after flapping)" : ""}`],
      ...metadata.map(([k, v]) => [`metadata ${k}`, v]),
    ]),
  );
}

async function showAudit(key) {
  const target = $("audit");
  const answer = await fetchJson(`/v1/audit/${nodePath(key)}`);
  if (state.selected !== key) return;
  if (!answer.ok) {
    refusal(target, answer);
    return;
  }
  const entries = answer.body.entries;
  target.replaceChildren(
    element("h3", { "data-audit-node": key, text: `Audit trail: ${entries.length} recorded transition(s)` }),
    table(
      ["time", "cause", "inc.", "by", "detail"],
      entries.map((e) => [when(e.time), e.cause, e.incarnation, e.operator || e.frontend, e.detail]),
    ),
  );
}

function paintActions() {
  const form = $("actions");
  form.hidden = !state.selected;
  const allowed = !!state.token;
  for (const button of form.querySelectorAll("button[data-action]")) button.disabled = !allowed;
  $("actions-note").textContent = allowed
    ? "Each action is confirmed first and recorded in the audit trail under your token's name."
    : "Actions need a token with the admin:write scope (enter it above).";
}

window.showNode = (key) => {
  $("node-detail").shown = null;
  $("action-result").textContent = "";
  paintNodeDetail();
  paintActions();
  $("audit").replaceChildren(element("p", { class: "note", text: `Loading the audit trail of ${key}…` }));
  showAudit(key);
};

async function onAction(event) {
  const action = event.target.dataset.action;
  const key = state.selected;
  if (!action || !key) return;
  const hold = Math.max(0, Number($("action-hold").value) || 0);
  const body = { reason: $("action-reason").value.trim() };
  if (action === "evict" && hold > 0) body.hold_seconds = hold;
  const done = await act(ACTION_TEXT[action](key, hold), "POST", `/v1/cluster/nodes/${nodePath(key)}/${action}`, body, "action-result");
  if (done) {
    report("action-result", `${done.node}: ${action} done${done.status ? `, now ${done.status}` : ""} at revision ${done.revision}, by ${done.operator} (in the audit trail)`, "done");
    showAudit(key);
  }
}

// -- self-preservation: the alarm and the suspects ------------------------------------------

async function settle(how, body, text) {
  const done = await act(text, "POST", `/v1/cluster/suspects/${how}`, body, "suspects-result");
  if (done) {
    const nodes = Object.entries(done.nodes);
    const failed = nodes.filter(([, outcome]) => outcome.error);
    report("suspects-result", `${how === "confirm" ? "Removed" : "Put back UP"}: ${nodes.length - failed.length} node(s)${failed.length ? `; failed: ${failed.map(([k, o]) => `${k} (${o.error})`).join(", ")}` : ""}.`, failed.length ? "failed" : "done");
    refreshSuspects();
  }
}

function suspectButtons(suspect) {
  const key = `${suspect.datacenter}/${suspect.type}/${suspect.id}`;
  const body = { nodes: [{ datacenter: suspect.datacenter, type: suspect.type, id: suspect.id }] };
  return element("span", { class: "buttons" },
    element("button", { type: "button", "data-confirm": key, onclick: () => settle("confirm", body, `Remove the suspect ${key} now (EVICTED)?`), text: "Remove" }),
    element("button", { type: "button", "data-cancel": key, onclick: () => settle("cancel", body, `Put ${key} back UP for one more TTL?`), text: "Keep" }),
  );
}

async function refreshSuspects() {
  const target = $("suspects");
  const alarm = $("alarm");
  const answer = await fetchJson("/v1/cluster/suspects");
  if (!answer.ok) {
    refusal(target, answer);
    alarm.hidden = true;
    return;
  }
  const body = answer.body;
  const preserving = body.datacenters.filter((dc) => dc.self_preservation);
  alarm.hidden = !preserving.length;
  alarm.textContent = preserving.length
    ? `Self-preservation: ${preserving.map((dc) => `${dc.datacenter} holds ${dc.suspects} of ${dc.members} members as SUSPECT`).join("; ")}. More nodes stopped renewing than the eviction budget removes; remove or keep them below (Self-preservation).`
    : "";
  const parts = [element("p", {
    text: preserving.length
      ? `ALARM: ${preserving.length} datacenter(s) in self-preservation.`
      : "No datacenter is in self-preservation: every expired node was removed within the budget.",
  })];
  if (body.suspects.length) {
    parts.push(table(
      ["node", "since", "removed at the latest", ""],
      body.suspects.map((s) => [`${s.datacenter}/${s.type}/${s.id}`, when(s.suspect_since), when(s.removed_at_the_latest), suspectButtons(s)]),
    ));
    for (const dc of preserving) {
      parts.push(element("button", {
        type: "button",
        "data-confirm-datacenter": dc.datacenter,
        onclick: () => settle("confirm", { datacenter: dc.datacenter }, `Remove all ${dc.suspects} suspect(s) of ${dc.datacenter} now (EVICTED)?`),
        text: `Remove every suspect of ${dc.datacenter}`,
      }));
    }
  }
  const previous = $("suspects-result"); // the outcome of the last action stays in view
  parts.push(previous && previous.textContent ? previous : element("p", { class: "result", id: "suspects-result", role: "status" }));
  target.replaceChildren(...parts);
}

// -- frontends, the push switch, convergence -------------------------------------------------

function paintFrontends() {
  const target = $("frontends");
  const { frontends, convergence } = panels;
  if (!frontends) return;
  if (!frontends.ok) {
    refusal(target, frontends);
    return;
  }
  const answered = new Set(convergence && convergence.ok ? convergence.body.frontends : []);
  const unreachable = new Map((convergence && convergence.ok ? convergence.body.unreachable : []).map((u) => [u.frontend, u.error]));
  const subscribers = convergence && convergence.ok ? convergence.body.subscribers : [];
  const rows = frontends.body.frontends.map((f) => {
    const own = subscribers.filter((s) => s.frontend === f.id && s.acknowledging);
    const health = unreachable.has(f.id)
      ? element("span", { class: "no", text: `UNREACHABLE: ${unreachable.get(f.id)}` })
      : answered.has(f.id) ? element("span", { class: "yes", text: "answering" }) : element("span", { class: "na", text: "announced" });
    return [
      element("span", { "data-frontend": f.id, text: `${f.id}${f.self ? " (this one)" : ""}` }),
      health,
      f.version,
      f.subscribers,
      own.length ? `${own.filter((s) => s.converged).length} of ${own.length}` : "–",
    ];
  });
  target.replaceChildren(
    element("p", { text: `${rows.length} frontend(s) announced in etcd; converged counts the subscribers that acknowledge.` }),
    table(["frontend", "health", "version", "subscribers", "converged"], rows),
  );
}

async function refreshPush() {
  const target = $("push");
  const answer = await fetchJson("/v1/cluster/push");
  if (!answer.ok) {
    refusal(target, answer);
    return;
  }
  const push = answer.body;
  const switchTo = !push.enabled;
  const result = element("p", { class: "result", id: "push-result", role: "status" });
  const previous = $("push-result");
  target.replaceChildren(
    element("p", { "data-push": push.enabled ? "on" : "off" }, element("strong", { text: push.enabled ? "Pushes ON" : "Pushes OFF" }), push.summary === "on" ? "" : ` · ${push.summary}`),
    element("p", { class: "note", text: push.changed_by ? `changed by ${push.changed_by} at ${when(push.changed_at)}` : "never changed" }),
    element("button", {
      type: "button",
      id: "push-toggle",
      class: switchTo ? "" : "danger",
      text: switchTo ? "Switch pushes on" : "Switch pushes off",
      onclick: async () => {
        const text = switchTo
          ? "Switch pushes on for every frontend? Each held subscriber gets one snapshot (resync PUSH_RESUMED)."
          : "Switch pushes off for every frontend? Subscribers get no changes until they are switched on again.";
        const done = await act(text, "PUT", "/v1/cluster/push", { enabled: switchTo }, "push-result");
        if (done) {
          report("push-result", `Pushes ${done.enabled ? "ON" : "OFF"}, by ${done.changed_by} at revision ${done.revision} (audited).`, "done");
          refreshPush();
        }
      },
    }),
    previous && previous.textContent ? previous : result,
  );
}

async function refreshConvergence() {
  const target = $("convergence");
  const answer = await fetchJson("/v1/cluster/convergence");
  panels.convergence = answer;
  paintFrontends();
  if (!answer.ok) {
    refusal(target, answer);
    return;
  }
  const body = answer.body;
  // Only a subscriber that acknowledges (AckWatch) can be seen to converge; the others (this
  // console's own event stream among them) are listed, never counted as behind.
  const acknowledging = body.subscribers.filter((s) => s.acknowledging);
  const behind = acknowledging.filter((s) => !s.converged);
  const parts = [element("p", {
    text: `${body.subscribers.length} subscriber(s) on ${body.frontends.length} frontend(s); ` +
      `${behind.length} of ${acknowledging.length} acknowledging subscriber(s) not converged to revision ${body.revision}` +
      (behind.length ? ` (the oldest owes it for ${body.oldest_pending_seconds}s)` : "") + ".",
  })];
  if (body.unreachable.length) {
    parts.push(element("p", { class: "no", text: `Unreachable: ${body.unreachable.map((u) => u.frontend).join(", ")}` }));
  }
  if (body.subscribers.length) {
    parts.push(table(
      ["frontend", "peer", "scope", "sent", "acked", "converged"],
      body.subscribers.slice(0, 200).map((s) => [
        s.frontend,
        s.peer.replace(/^ipv[46]:/, ""),
        `${(s.scope.datacenters || []).join(",") || "*"}/${(s.scope.types || []).join(",") || "*"}`,
        s.sent_revision,
        s.acknowledging ? s.acked_revision : "–",
        s.acknowledging ? yesNo(s.converged) : element("span", { class: "na", text: "does not ack" }),
      ]),
    ));
  }
  target.replaceChildren(...parts);
}

async function refreshFrontends() {
  panels.frontends = await fetchJson("/v1/cluster/frontends");
  paintFrontends();
}

function refreshAll() {
  return Promise.allSettled([refreshSuspects(), refreshFrontends(), refreshPush(), refreshConvergence()]);
}

async function refreshForever() {
  for (;;) {
    await refreshAll();
    await sleep(PANEL_REFRESH_MS);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("actions").addEventListener("click", onAction);
  $("actions").addEventListener("submit", (event) => event.preventDefault());
  state.onNodesPainted.push(paintNodeDetail);
  state.onTokenChange.push(() => {
    refreshAll();
    paintActions();
    if (state.selected) showAudit(state.selected);
  });
  refreshForever();
});
