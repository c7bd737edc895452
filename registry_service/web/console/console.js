// node-registry console, part one: the live node list over /v1/watch (Server-Sent Events read
// through fetch(), so that a bearer token goes in the Authorization header, never in a URL).
//
// Built for 10,000 nodes and more: the nodes live in a Map, beside their keys in order and their
// counts per datacenter and type, all three kept up to date by each event (a binary search, no
// pass over every node); an event asks for one repaint on the next animation frame (a burst of
// changes costs one); a repaint rewrites the counts and, in place and keyed by node, the rows of
// the visible page, never more than one page of rows (nodes_view.js: filters, pages, painting).
// operator.js adds the operator's panels and actions.
"use strict";

const TOKEN_KEY = "noderegistry.token"; // sessionStorage: gone when the tab closes
const PAGE_SIZE = 100;
const ICONS = { UP: "●", DRAINING: "◐", SUSPECT: "▲", OUT_OF_SERVICE: "■" };
const STATUSES = ["UP", "DRAINING", "SUSPECT", "OUT_OF_SERVICE"];

const state = {
  nodes: new Map(), // "dc/type/id" -> node
  sorted: [], // the keys in order, kept so as nodes come and go (binary search)
  counts: new Map(), // "dc/type" -> {total, UP, DRAINING, SUSPECT, OUT_OF_SERVICE}, kept so too
  datacenters: new Map(), // name -> {remote, stale, ageSeconds} (a followed one is remote)
  eventId: "", // where the stream stands (the last event's id): sent back to resume
  revision: 0, // this frontend's etcd's
  stale: false,
  ageSeconds: 0,
  selected: null,
  page: 0,
  filter: { text: "", datacenter: "", type: "", status: "" },
  selector: "", // a label selector on metadata, applied by the registry (the watch's scope)
  scopeRefused: "", // why the registry refused the selector (400), shown where the nodes would be
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  tokenRefused: "", // why the watch was refused (401/403), shown where the nodes would be
  stream: null, // AbortController of the open watch
  changed: null, // resolves when the token or the selector changes (a refused watch waits)
  repaintAsked: false,
  painted: false,
  onTokenChange: [], // operator.js's refreshes
  onNodesPainted: [], // operator.js's node panel follows its node
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

function metadataText(node) {
  return Object.entries(node.metadata || {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, value]) => `${key}=${value}`)
    .join(", ");
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
  let searched = 0; // the buffer holds no event's end before this (a snapshot spans many reads)
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n", searched)) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      searched = 0;
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
    searched = Math.max(0, buffer.length - 1);
  }
}

function noteDatacenter(entry) {
  state.datacenters.set(entry.datacenter, {
    remote: entry.remote,
    stale: entry.stale,
    ageSeconds: entry.age_seconds,
  });
}

function count(node, step) {
  const cell = `${node.datacenter}/${node.type}`;
  let counted = state.counts.get(cell);
  if (!counted) state.counts.set(cell, (counted = { total: 0, UP: 0, DRAINING: 0, SUSPECT: 0, OUT_OF_SERVICE: 0 }));
  counted.total += step;
  counted[node.status] += step;
  if (!counted.total) state.counts.delete(cell);
}

// Where `key` is, or would go, in the sorted keys.
function position(key) {
  let low = 0;
  let high = state.sorted.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (state.sorted[middle] < key) low = middle + 1;
    else high = middle;
  }
  return low;
}

function putNode(key, node) {
  const old = state.nodes.get(key);
  if (old) count(old, -1);
  else state.sorted.splice(position(key), 0, key);
  state.nodes.set(key, node);
  count(node, 1);
}

function dropNode(key) {
  const old = state.nodes.get(key);
  if (!old) return;
  count(old, -1);
  state.nodes.delete(key);
  state.sorted.splice(position(key), 1);
}

function applyEvent(name, id, data) {
  if (name === "error") throw new Error(`${data.error.code}: ${data.error.message}`);
  if (id !== null) state.eventId = id;
  if (name === "snapshot") {
    // A whole list, or (with `datacenter`) one followed datacenter's list alone: rebuilt at
    // once, sorted once.
    for (const key of [...state.nodes.keys()]) {
      if (!data.datacenter || key.startsWith(`${data.datacenter}/`)) state.nodes.delete(key);
    }
    if (!data.datacenter) state.datacenters.clear();
    for (const datacenter of data.datacenters) {
      noteDatacenter(datacenter);
      for (const node of datacenter.nodes) state.nodes.set(keyOf(node), node);
    }
    state.sorted = [...state.nodes.keys()].sort();
    state.counts.clear();
    for (const node of state.nodes.values()) count(node, 1);
  } else if (name === "delta") {
    for (const change of data.events) {
      if (!state.datacenters.has(change.node.datacenter)) {
        noteDatacenter({ datacenter: change.node.datacenter, remote: !!data.datacenter, stale: false, age_seconds: 0 });
      }
      const key = keyOf(change.node);
      if (change.type === "REMOVED") dropNode(key);
      else putNode(key, change.node);
    }
  } else if (name === "progress" && data.datacenter) {
    const known = state.datacenters.get(data.datacenter);
    if (known) {
      known.stale = data.stale;
      known.ageSeconds = data.age_seconds;
    }
  }
  if (!data.datacenter) {
    state.revision = data.revision;
    state.stale = data.stale !== undefined ? data.stale : state.stale;
    state.ageSeconds = data.age_seconds !== undefined ? data.age_seconds : state.ageSeconds;
  }
  askRepaint();
}

function waitForChange() {
  return new Promise((resolve) => {
    state.changed = resolve;
  });
}

function watchUrl() {
  const selector = state.selector ? `&selector=${encodeURIComponent(state.selector)}` : "";
  return `/v1/watch?datacenter_revisions=true${selector}`;
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
      if (!state.painted) performance.mark("console:watch-start");
      const response = await fetch(watchUrl(), {
        headers,
        signal: controller.signal,
        cache: "no-store",
      });
      if (response.status === 401 || response.status === 403) {
        const why = await errorMessage(response);
        state.tokenRefused = response.status === 401
          ? `A token is needed: this registry lists its nodes only to a token with the watch scope. Enter one above. (${why})`
          : `This token may not list the nodes: it needs the watch scope. (${why})`;
        setConnection(response.status === 401 ? "a token is needed: enter a token with the watch scope" : `refused: ${why}; enter a token with the watch scope`, false);
        askRepaint();
        await Promise.race([waitForChange(), sleep(30000)]);
        continue;
      }
      if (response.status === 400 && state.selector) {
        // A selector the registry cannot parse: said once, until the selector changes.
        state.scopeRefused = `The registry refused the selector: ${await errorMessage(response)}`;
        setConnection("selector refused; change it, or clear it", false);
        askRepaint();
        await waitForChange();
        continue;
      }
      if (!response.ok) throw new Error(await errorMessage(response));
      state.tokenRefused = "";
      state.scopeRefused = "";
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

// -- the token ------------------------------------------------------------------------------

function useToken(token) {
  state.token = token;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  if (state.stream) state.stream.abort(); // reconnects with the token, resuming where it was
  if (state.changed) state.changed();
  for (const callback of state.onTokenChange) callback();
}

// -- the selector ---------------------------------------------------------------------------

// The registry filters by the selector (`zone=a,!canary`, `version in (2,3)`: Kubernetes'
// syntax, as the SDK's Scope and the HTTP API's `selector`), so the page holds only what it
// matches. Another selector is another scope: a new watch from its snapshot, not a resume.
function useSelector(text) {
  if (text === state.selector) return;
  state.selector = text;
  state.scopeRefused = "";
  state.eventId = "";
  state.nodes.clear();
  state.sorted = [];
  state.counts.clear();
  state.datacenters.clear();
  state.page = 0;
  if (state.stream) state.stream.abort();
  if (state.changed) state.changed();
  askRepaint();
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
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  $("filters").addEventListener("input", readFilters);
  $("filters").addEventListener("change", readFilters);
  $("filters").addEventListener("reset", () => setTimeout(() => {
    readFilters();
    useSelector("");
  }, 0));
  const selector = $("f-selector");
  selector.addEventListener("change", () => useSelector(selector.value.trim()));
  selector.addEventListener("keydown", (event) => {
    if (event.key === "Enter") useSelector(selector.value.trim());
  });
  $("page-previous").addEventListener("click", () => {
    state.page = Math.max(0, state.page - 1);
    askRepaint();
  });
  $("page-next").addEventListener("click", () => {
    state.page += 1;
    askRepaint();
  });
  watchForever();
  askRepaint();
});
