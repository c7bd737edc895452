// node-registry console, part two: the node list on the page. Filtering and paging (one page
// of PAGE_SIZE rows, found by a pass over the sorted keys only when a filter is set), and the
// repaint: the counts per datacenter and type, and the visible page's rows rewritten in place,
// each only when its node changed. console.js keeps the list these read; operator.js adds the
// operator's panels and actions.
"use strict";

// -- filtering and paging -------------------------------------------------------------------

// "zone=a" matches that metadata entry; any other text matches a part of the node's id,
// address or metadata.
function textMatcher(text) {
  const wanted = text.trim().toLowerCase();
  if (!wanted) return null;
  const equals = wanted.indexOf("=");
  if (equals > 0) {
    const key = wanted.slice(0, equals);
    const value = wanted.slice(equals + 1);
    return (node) => Object.entries(node.metadata || {}).some(
      ([k, v]) => k.toLowerCase() === key && (!value || v.toLowerCase() === value),
    );
  }
  return (node) => node.id.includes(wanted) || node.address.includes(wanted)
    || metadataText(node).toLowerCase().includes(wanted);
}

// The nodes of page `page` (PAGE_SIZE a page) among those the filter matches, and how many
// match. Without a filter, a slice of the sorted keys: no pass over every node.
function pageOf(page) {
  const { text, datacenter, type, status } = state.filter;
  const first = page * PAGE_SIZE;
  if (!text.trim() && !datacenter && !type && !status) {
    const keys = state.sorted.slice(first, first + PAGE_SIZE);
    return { total: state.sorted.length, visible: keys.map((key) => state.nodes.get(key)) };
  }
  const byText = textMatcher(text);
  const visible = [];
  let total = 0;
  for (const key of state.sorted) {
    const node = state.nodes.get(key);
    if (datacenter && node.datacenter !== datacenter) continue;
    if (type && node.type !== type) continue;
    if (status && node.status !== status) continue;
    if (byText && !byText(node)) continue;
    if (total >= first && visible.length < PAGE_SIZE) visible.push(node);
    total += 1;
  }
  return { total, visible };
}

function readFilters() {
  state.filter = {
    text: $("f-text").value,
    datacenter: $("f-datacenter").value,
    type: $("f-type").value,
    status: $("f-status").value,
  };
  state.page = 0;
  askRepaint();
}

function setSelect(select, values) {
  const current = select.value;
  const have = [...select.options].slice(1).map((option) => option.value);
  if (have.join("\n") === values.join("\n")) return;
  select.replaceChildren(element("option", { value: "", text: "all" }));
  for (const value of values) select.append(element("option", { value, text: value }));
  select.value = values.includes(current) ? current : "";
}

// -- painting -------------------------------------------------------------------------------

function askRepaint() {
  if (state.repaintAsked) return;
  state.repaintAsked = true;
  requestAnimationFrame(repaint);
}

function repaint() {
  state.repaintAsked = false;
  const groups = countGroups();
  paintGroups(groups);
  paintRows();
  paintFreshness();
  document.body.dataset.renderedRevision = String(state.revision);
  if (!state.painted && state.revision) {
    state.painted = true;
    performance.mark("console:nodes-painted");
  }
  for (const callback of state.onNodesPainted) callback();
}

function countGroups() {
  const types = new Set([...state.counts.keys()].map((cell) => cell.slice(cell.indexOf("/") + 1)));
  return { counts: state.counts, types: [...types].sort(), datacenters: [...state.datacenters.keys()].sort() };
}

function groupCell(datacenter, type, count) {
  const selected = state.filter.datacenter === datacenter && state.filter.type === type;
  const parts = [element("span", { class: "total", text: String(count ? count.total : 0) })];
  for (const status of STATUSES.slice(1)) {
    if (count && count[status]) parts.push(element("span", { class: `status status-${status.toLowerCase()}`, text: ` ${ICONS[status]} ${count[status]}` }));
  }
  const button = element("button", {
    type: "button",
    class: `group${selected ? " selected" : ""}`,
    "data-group": `${datacenter}/${type}`,
    "aria-label": `${datacenter}/${type}: ${count ? count.total : 0} nodes; show them`,
    onclick: () => {
      const same = state.filter.datacenter === datacenter && state.filter.type === type;
      $("f-datacenter").value = same ? "" : datacenter;
      $("f-type").value = same ? "" : type;
      readFilters();
    },
  }, ...parts);
  return button;
}

function paintGroups({ counts, types, datacenters }) {
  const scope = state.selector ? `; selector ${state.selector}` : "";
  $("node-count").textContent = `(${state.nodes.size.toLocaleString("en")} in ${datacenters.length} datacenter${datacenters.length === 1 ? "" : "s"}${scope})`;
  setSelect($("f-datacenter"), datacenters);
  setSelect($("f-type"), types);
  const head = $("groups-head");
  const wanted = ["datacenter \\ type", ...types];
  if ([...head.children].map((th) => th.textContent).join("\n") !== wanted.join("\n")) {
    head.replaceChildren(...wanted.map((text) => element("th", { scope: "col", text })));
  }
  const body = $("groups-body");
  const rows = new Map([...body.children].map((row) => [row.dataset.datacenter, row]));
  const ordered = [];
  for (const datacenter of datacenters) {
    const about = state.datacenters.get(datacenter);
    const heading = element("th", { scope: "row", text: datacenter });
    if (about.remote) heading.append(element("span", { class: "remote", text: "followed from its own registry" }));
    if (about.stale) heading.append(element("span", { class: "stale", text: `STALE, last heard ${about.ageSeconds}s ago` }));
    const cells = types.map((type) => element("td", {}, groupCell(datacenter, type, counts.get(`${datacenter}/${type}`))));
    let row = rows.get(datacenter);
    if (!row) row = element("tr", { "data-datacenter": datacenter });
    row.replaceChildren(heading, ...cells); // one row per datacenter: a handful of cells
    ordered.push(row);
  }
  body.replaceChildren(...ordered);
}

function healthBadge(node) {
  // A failing check (or flap damping) keeps a node listed but not offered for new work.
  if ((node.health || "UNCHECKED") !== "FAILING") return null;
  const badge = element("span", { class: "health health-failing" });
  badge.append(element("span", { "aria-hidden": "true", text: "✕ " }), node.damped ? "FAILING (damped)" : "FAILING");
  return badge;
}

function fillRow(row, node) {
  const key = keyOf(node);
  const health = node.health || "UNCHECKED";
  row.dataset.node = key;
  row.dataset.status = node.status;
  row.dataset.health = health;
  const failing = health === "FAILING" ? " health-failing" : "";
  row.className = `node status-${node.status.toLowerCase()}${failing}${state.selected === key ? " selected" : ""}`;
  const open = element("button", {
    type: "button",
    class: "node-open",
    "aria-label": `${key}, ${node.status}, health ${health}${node.damped ? " (damped)" : ""}, ${node.address}; show it`,
    onclick: () => selectNode(key),
  }, element("span", { class: "id", text: node.id }), element("span", { class: "where", text: `${node.datacenter}/${node.type}` }));
  const metadata = metadataText(node);
  row.replaceChildren(
    element("td", {}, open),
    element("td", {}, statusBadge(node.status), healthBadge(node)),
    element("td", { class: "address", text: node.address }),
    element("td", { text: String(node.incarnation) }),
    element("td", { class: "metadata", text: metadata || "–", title: metadata }),
  );
  row.shown = node;
  row.shownSelected = state.selected === key;
}

function paintRows() {
  let { total, visible } = pageOf(state.page);
  const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
  if (state.page > pages - 1) {
    state.page = pages - 1; // the list shrank under the page shown
    ({ total, visible } = pageOf(state.page));
  }
  const first = state.page * PAGE_SIZE;
  const body = $("node-rows");
  const existing = new Map([...body.children].map((row) => [row.dataset.node, row]));
  const rows = visible.map((node) => {
    const key = keyOf(node);
    let row = existing.get(key);
    if (!row) {
      row = element("tr");
      // The whole row opens the node; its first cell's button does the same from a keyboard.
      row.addEventListener("click", (event) => {
        if (!event.target.closest("button")) selectNode(row.dataset.node);
      });
    }
    // Rewritten only when its node changed (a new object per change) or was (de)selected.
    if (row.shown !== node || row.shownSelected !== (state.selected === key)) fillRow(row, node);
    return row;
  });
  const same = rows.length === body.children.length && rows.every((row, i) => body.children[i] === row);
  if (!same) body.replaceChildren(...rows);
  const empty = $("nodes-empty");
  const notice = $("nodes-notice");
  const refused = state.tokenRefused || state.scopeRefused;
  notice.hidden = !refused;
  notice.textContent = refused;
  empty.hidden = total > 0 || !!refused;
  empty.textContent = state.nodes.size
    ? "No node matches the filter."
    : !state.revision ? "No nodes yet." : state.selector ? "No node matches the selector." : "No nodes registered.";
  $("page-info").textContent = total
    ? `${(first + 1).toLocaleString("en")}–${(first + visible.length).toLocaleString("en")} of ${total.toLocaleString("en")}${total === state.nodes.size ? "" : " matching"} · page ${state.page + 1} of ${pages}`
    : "";
  $("page-previous").disabled = state.page === 0;
  $("page-next").disabled = state.page >= pages - 1;
}

function paintFreshness() {
  $("revision").textContent = state.revision ? String(state.revision) : "–";
  $("freshness").textContent = state.stale
    ? `STALE: the frontend cannot reach etcd (last heard ${state.ageSeconds}s ago)`
    : "current";
}

function selectNode(key) {
  state.selected = key;
  askRepaint();
  if (window.showNode) window.showNode(key);
}
