// node-registry console: the live node list over /v1/watch (Server-Sent Events read through
// fetch(), so that a bearer token goes in the Authorization header, never in a URL), and the
// operator's views (/v1/cluster/..., /v1/audit/...), which need a token with admin:read when the
// registry has tokens: without one the console shows the nodes only.
"use strict";

const TOKEN_KEY = "noderegistry.token"; // sessionStorage: gone when the tab closes
const PANEL_REFRESH_MS = 5000;
const ICONS = { UP: "●", DRAINING: "◐", SUSPECT: "▲", OUT_OF_SERVICE: "■" };

const state = {
  nodes: new Map(), // "dc/type/id" -> node
  datacenters: new Map(), // name -> {remote, stale, ageSeconds} (a followed one is remote)
  eventId: "", // where the stream stands (the last event's id): sent back to resume
  revision: 0, // this frontend's etcd's
  stale: false,
  ageSeconds: 0,
  selected: null,
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  stream: null, // AbortController of the open watch
  tokenChanged: null, // resolves when the token changes (a refused watch waits for it)
};

const $ = (id) => document.getElementById(id);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (name === "onclick") node.addEventListener("click", value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function authHeaders() {
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function keyOf(node) {
  return `${node.datacenter}/${node.type}/${node.id}`;
}

function statusBadge(status) {
  const badge = element("span", { class: `status status-${status.toLowerCase()}` });
  badge.append(element("span", { "aria-hidden": "true", text: `${ICONS[status] || "?"} ` }), status);
  return badge;
}

function when(seconds) {
  // 2026-12-01 17:02:26Z: UTC, to the second, as the logs and the CLI write times
  return seconds ? new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "–";
}

// -- the watch ------------------------------------------------------------------------------

function setConnection(text, live) {
  const connection = $("connection");
  connection.textContent = text;
  connection.className = `connection ${live ? "live" : "down"}`;
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return `${body.error.code}: ${body.error.message}`;
  } catch (err) {
    return `HTTP ${response.status}`;
  }
}

// Calls onEvent(name, id, data) for each event of a text/event-stream body.
async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      let id = null;
      const data = [];
      for (const line of block.split("\n")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = text;
        else if (field === "id") id = text;
        else if (field === "data") data.push(text);
      }
      if (data.length) onEvent(name, id, JSON.parse(data.join("\n")));
    }
  }
}

function noteDatacenter(entry) {
  state.datacenters.set(entry.datacenter, {
    remote: entry.remote,
    stale: entry.stale,
    ageSeconds: entry.age_seconds,
  });
}

function applyEvent(name, id, data) {
  if (name === "error") throw new Error(`${data.error.code}: ${data.error.message}`);
  if (id !== null) state.eventId = id;
  if (name === "snapshot") {
    // A whole list, or (with `datacenter`) one followed datacenter's list alone.
    for (const key of [...state.nodes.keys()]) {
      if (!data.datacenter || key.startsWith(`${data.datacenter}/`)) state.nodes.delete(key);
    }
    if (!data.datacenter) state.datacenters.clear();
    for (const datacenter of data.datacenters) {
      noteDatacenter(datacenter);
      for (const node of datacenter.nodes) state.nodes.set(keyOf(node), node);
    }
  } else if (name === "delta") {
    for (const change of data.events) {
      if (!state.datacenters.has(change.node.datacenter)) {
        noteDatacenter({ datacenter: change.node.datacenter, remote: !!data.datacenter, stale: false, age_seconds: 0 });
      }
      if (change.type === "REMOVED") state.nodes.delete(keyOf(change.node));
      else state.nodes.set(keyOf(change.node), change.node);
    }
  }
  let redraw = name !== "progress";
  if (name === "progress" && data.datacenter) {
    const known = state.datacenters.get(data.datacenter);
    if (known) {
      redraw = known.stale !== data.stale; // the grid is redrawn only when it shows something new
      known.stale = data.stale;
      known.ageSeconds = data.age_seconds;
    }
  }
  if (!data.datacenter) {
    state.revision = data.revision;
    state.stale = data.stale !== undefined ? data.stale : state.stale;
    state.ageSeconds = data.age_seconds !== undefined ? data.age_seconds : state.ageSeconds;
  }
  if (redraw) renderNodes();
  renderFreshness();
}

function waitForToken() {
  return new Promise((resolve) => {
    state.tokenChanged = resolve;
  });
}

async function watchForever() {
  let backoff = 500;
  for (;;) {
    const controller = new AbortController();
    state.stream = controller;
    const headers = authHeaders();
    // Where it stood: the frontend sends exactly what came after it (or a resync), for this
    // datacenter's etcd and each followed datacenter in that one's own revisions.
    if (state.eventId) headers["Last-Event-ID"] = state.eventId;
    try {
      const response = await fetch("/v1/watch?datacenter_revisions=true", {
        headers,
        signal: controller.signal,
        cache: "no-store",
      });
      if (response.status === 401 || response.status === 403) {
        setConnection(`refused: ${await errorMessage(response)}; enter a token with the watch scope`, false);
        await Promise.race([waitForToken(), sleep(30000)]);
        continue;
      }
      if (!response.ok) throw new Error(await errorMessage(response));
      setConnection("live", true);
      backoff = 500;
      await readEvents(response.body, applyEvent);
      setConnection("stream ended; reconnecting…", false);
    } catch (err) {
      if (controller.signal.aborted) continue; // the token changed: reconnect at once
      setConnection(`disconnected (${err.message}); reconnecting…`, false);
    }
    await sleep(backoff);
    backoff = Math.min(backoff * 2, 10000);
  }
}

// -- rendering ------------------------------------------------------------------------------

function renderFreshness() {
  $("revision").textContent = state.revision ? String(state.revision) : "–";
  $("freshness").textContent = state.stale
    ? `STALE: the frontend cannot reach etcd (last heard ${state.ageSeconds}s ago)`
    : "current";
}

function healthBadge(node) {
  // A failing check (or flap damping) keeps a node listed but not offered for new work.
  const health = node.health || "UNCHECKED";
  if (health !== "FAILING") return null;
  const text = node.damped ? "FAILING (damped)" : "FAILING";
  const badge = element("span", { class: "health health-failing" });
  badge.append(element("span", { "aria-hidden": "true", text: "✕ " }), text);
  return badge;
}

function nodeButton(node) {
  const key = keyOf(node);
  const health = node.health || "UNCHECKED";
  const failing = health === "FAILING" ? " health-failing" : "";
  const button = element("button", {
    type: "button",
    class: `node status-${node.status.toLowerCase()}${failing}${state.selected === key ? " selected" : ""}`,
    "data-node": key,
    "data-status": node.status,
    "data-health": health,
    "aria-label": `${node.id}, ${node.status}, health ${health}${node.damped ? " (damped)" : ""}, ${node.address}; show its audit trail`,
    onclick: () => showAudit(key),
  });
  button.append(
    statusBadge(node.status),
    element("span", { class: "id", text: node.id }),
    element("span", { class: "address", text: node.address }),
  );
  const badge = healthBadge(node);
  if (badge) button.append(badge);
  return button;
}

function renderNodes() {
  const byCell = new Map();
  const types = new Set();
  for (const node of state.nodes.values()) {
    types.add(node.type);
    const cell = `${node.datacenter}/${node.type}`;
    if (!byCell.has(cell)) byCell.set(cell, []);
    byCell.get(cell).push(node);
  }
  const datacenters = [...state.datacenters.keys()].sort();
  const columns = [...types].sort();
  $("node-count").textContent = `(${state.nodes.size} in ${datacenters.length} datacenter${datacenters.length === 1 ? "" : "s"})`;
  const grid = $("grid");
  grid.replaceChildren();
  if (!state.nodes.size) {
    grid.append(element("p", { class: "empty", text: "No nodes registered." }));
    return;
  }
  const head = element("tr", {}, element("th", { scope: "col", text: "datacenter \\ type" }));
  for (const type of columns) head.append(element("th", { scope: "col", text: type }));
  const body = element("tbody");
  for (const datacenter of datacenters) {
    const about = state.datacenters.get(datacenter);
    const heading = element("th", { scope: "row", text: datacenter });
    if (about.remote) heading.append(element("span", { class: "remote", text: "followed from its own registry" }));
    if (about.stale) heading.append(element("span", { class: "stale", text: `STALE, last heard ${about.ageSeconds}s ago` }));
    const row = element("tr", { "data-datacenter": datacenter }, heading);
    for (const type of columns) {
      const nodes = (byCell.get(`${datacenter}/${type}`) || []).sort((a, b) => a.id.localeCompare(b.id));
      const list = element("ul", { class: "cell" });
      for (const node of nodes) list.append(element("li", {}, nodeButton(node)));
      row.append(element("td", {}, list));
    }
    body.append(row);
  }
  grid.append(element("table", { class: "grid" }, element("thead", {}, head), body));
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

// -- the operator's views (admin:read) ------------------------------------------------------

async function fetchJson(path) {
  const response = await fetch(path, { headers: authHeaders(), cache: "no-store" });
  if (response.ok) return { ok: true, body: await response.json() };
  return { ok: false, status: response.status, message: await errorMessage(response) };
}

function refusal(target, answer) {
  const text = answer.status === 401 || answer.status === 403
    ? `Needs a token with the admin:read scope (${answer.message}). Without one the console is read-only and shows the nodes only.`
    : `Not available: ${answer.message}`;
  target.replaceChildren(element("p", { class: "note", text }));
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
    ? `Self-preservation: ${preserving.map((dc) => `${dc.datacenter} holds ${dc.suspects} of ${dc.members} members as SUSPECT`).join("; ")}. More nodes stopped renewing than the eviction budget removes; confirm or cancel them with noderegistry admin suspects.`
    : "";
  const summary = element("p", {
    text: preserving.length
      ? `ALARM: ${preserving.length} datacenter(s) in self-preservation.`
      : "No datacenter is in self-preservation: every expired node was removed within the budget.",
  });
  const parts = [summary];
  if (body.suspects.length) {
    parts.push(table(
      ["node", "since", "removed at the latest"],
      body.suspects.map((s) => [`${s.datacenter}/${s.type}/${s.id}`, when(s.suspect_since), when(s.removed_at_the_latest)]),
    ));
  }
  target.replaceChildren(...parts);
}

async function refreshConvergence() {
  const target = $("convergence");
  const answer = await fetchJson("/v1/cluster/convergence");
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
      body.subscribers.map((s) => [
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

async function showAudit(key) {
  state.selected = key;
  renderNodes();
  const target = $("audit");
  target.replaceChildren(element("p", { class: "note", text: `Loading ${key}…` }));
  const answer = await fetchJson(`/v1/audit/${key.split("/").map(encodeURIComponent).join("/")}`);
  if (!answer.ok) {
    refusal(target, answer);
    return;
  }
  const entries = answer.body.entries;
  target.replaceChildren(
    element("p", { "data-audit-node": key, text: `${key}: ${entries.length} recorded transition(s)` }),
    table(
      ["time", "cause", "inc.", "by", "detail"],
      entries.map((e) => [when(e.time), e.cause, e.incarnation, e.operator || e.frontend, e.detail]),
    ),
  );
}

async function refreshPanels() {
  for (;;) {
    await Promise.allSettled([refreshSuspects(), refreshConvergence()]);
    await sleep(PANEL_REFRESH_MS);
  }
}

// -- the token ------------------------------------------------------------------------------

function useToken(token) {
  state.token = token;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  if (state.stream) state.stream.abort(); // reconnects with the token, resuming where it was
  if (state.tokenChanged) state.tokenChanged();
  refreshSuspects();
  refreshConvergence();
  if (state.selected) showAudit(state.selected);
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").value = state.token;
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    useToken($("token").value.trim());
  });
  $("token-forget").addEventListener("click", () => {
    $("token").value = "";
    useToken("");
  });
  watchForever();
  refreshPanels();
});
