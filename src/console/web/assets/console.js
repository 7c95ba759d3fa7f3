// The console's only script: it calls the admin API (/admin/v1) with the session cookie and
// the session's CSRF token, and draws the usage chart as inline SVG. No library, no CDN.
"use strict";

const $ = (selector) => document.querySelector(selector);
let csrf = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  }
  return node;
}

function notice(text, ok = false) {
  const box = $("#notice");
  box.textContent = text;
  box.className = ok ? "ok" : "";
  box.hidden = !text;
}

async function api(method, path, body) {
  const headers = { "accept": "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (csrf) headers["x-csrf-token"] = csrf;
  const response = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    if (response.status === 401 && path !== "/admin/sign-in") showSignIn();
    throw new Error(data?.error?.message || `The gateway answered ${response.status}.`);
  }
  return data;
}

// Runs an action, showing its failure in plain words instead of throwing.
function guarded(action) {
  return async (event) => {
    event?.preventDefault?.();
    notice("");
    try { await action(event); } catch (error) { notice(error.message); }
  };
}

function workspace() { return $("#workspace").value; }
function q(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) if (value) search.set(name, value);
  const text = search.toString();
  return text ? `?${text}` : "";
}
function fill(table, rows) {
  const body = $(`${table} tbody`);
  body.replaceChildren(...rows);
  if (!rows.length) {
    const columns = $(`${table} thead tr`).children.length;
    body.append(el("tr", {}, el("td", { colspan: columns, class: "empty" }, "Nothing here yet.")));
  }
}
const day = (time) => (time ? time.replace("T", " ").replace("Z", " UTC") : "—");

// ---- session -----------------------------------------------------------------------------

function showSignIn() {
  csrf = null;
  $("#app").hidden = true;
  $("#who").hidden = true;
  $("#signin").hidden = false;
  $("#token").focus();
}

async function showApp(session) {
  csrf = session.csrf_token;
  $("#token-id").textContent = session.token_id;
  $("#who").hidden = false;
  $("#signin").hidden = true;
  $("#app").hidden = false;
  await loadWorkspaces();
  openTab(location.hash.slice(1) || "keys");
}

async function start() {
  try {
    await showApp(await api("GET", "/admin/session"));
  } catch {
    showSignIn();
  }
}

$("#signin-form").addEventListener("submit", guarded(async () => {
  const input = $("#token");
  const token = input.value.trim();
  input.value = ""; // the token never stays in the page
  const session = await api("POST", "/admin/sign-in", { token });
  await showApp(session);
}));

$("#sign-out").addEventListener("click", guarded(async () => {
  await api("POST", "/admin/sign-out");
  showSignIn();
}));

// ---- tabs --------------------------------------------------------------------------------

const loaders = {
  workspaces: loadWorkspaces, keys: loadKeys, accounts: loadAccounts,
  usage: loadUsage, audit: loadAudit, reports: loadReports,
};

function openTab(name) {
  if (!loaders[name]) name = "keys";
  for (const button of document.querySelectorAll("nav button")) button.classList.toggle("active", button.dataset.tab === name);
  for (const section of document.querySelectorAll(".tab")) section.hidden = section.id !== `tab-${name}`;
  history.replaceState(null, "", `#${name}`);
  guarded(loaders[name])();
}

for (const button of document.querySelectorAll("nav button")) {
  button.addEventListener("click", () => openTab(button.dataset.tab));
}
$("#workspace").addEventListener("change", () => openTab(location.hash.slice(1)));

// ---- workspaces --------------------------------------------------------------------------

async function loadWorkspaces() {
  const { workspaces } = await api("GET", "/admin/v1/workspaces");
  const picker = $("#workspace");
  const chosen = picker.value;
  picker.replaceChildren(...workspaces.map((w) => el("option", { value: w.name }, w.name)));
  if (workspaces.some((w) => w.name === chosen)) picker.value = chosen;
  fill("#workspaces-table", workspaces.map((w) =>
    el("tr", {}, el("td", {}, w.name), el("td", {}, el("code", {}, w.id)), el("td", {}, day(w.created_at)))));
}

$("#workspace-form").addEventListener("submit", guarded(async () => {
  const name = $("#ws-name").value.trim();
  await api("POST", "/admin/v1/workspaces", { name });
  $("#ws-name").value = "";
  await loadWorkspaces();
  $("#workspace").value = name;
  notice(`Created workspace ${name}.`, true);
}));

// ---- keys --------------------------------------------------------------------------------

function scope(k) {
  const parts = [];
  if (k.read_only) parts.push("read-only");
  parts.push(k.actions ? k.actions.join(", ") : "all actions");
  if (k.websites) parts.push(`websites ${k.websites.join(", ")}`);
  return parts.join("; ");
}

async function loadKeys() {
  const { keys } = await api("GET", `/admin/v1/keys${q({ workspace: workspace() })}`);
  fill("#keys-table", keys.map((k) => el("tr", { "data-key": k.id },
    el("td", {}, el("code", {}, k.id)),
    el("td", {}, k.name || "—"),
    el("td", { class: `status-${k.status}` }, k.status),
    el("td", {}, scope(k)),
    el("td", {}, k.quota || "—"),
    el("td", {}, day(k.expires_at)),
    el("td", {}, day(k.last_used_at)),
    el("td", { class: "actions" }, k.status === "active" ? [
      el("button", { class: "quiet rotate", "data-id": k.id, onclick: guarded(() => rotateKey(k.id)) }, "Rotate"),
      " ",
      el("button", { class: "danger revoke", "data-id": k.id, onclick: guarded(() => revokeKey(k.id)) }, "Revoke"),
    ] : []),
  )));
}

function showSecret(created) {
  $("#new-key-secret").textContent = created.key;
  $("#new-key-note").textContent = `Key ${created.id} for workspace ${created.workspace}. ${created.note}`;
  $("#new-key").hidden = false;
}

$("#key-form").addEventListener("submit", guarded(async () => {
  const actions = $("#key-actions").value.split(",").map((a) => a.trim()).filter(Boolean);
  const body = { workspace: workspace(), read_only: $("#key-read-only").checked };
  if ($("#key-name").value.trim()) body.name = $("#key-name").value.trim();
  if (actions.length) body.actions = actions;
  if ($("#key-expires").value.trim()) body.expires_in = $("#key-expires").value.trim();
  if ($("#key-quota").value.trim()) body.quota = $("#key-quota").value.trim();
  showSecret(await api("POST", "/admin/v1/keys", body));
  $("#key-form").reset();
  await loadKeys();
}));

$("#copy-key").addEventListener("click", guarded(async () => {
  const secret = $("#new-key-secret").textContent;
  try {
    await navigator.clipboard.writeText(secret);
  } catch {
    // Without clipboard access (plain HTTP on another host), select it for Ctrl+C.
    const range = document.createRange();
    range.selectNodeContents($("#new-key-secret"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
  }
  notice("Copied. Store it in your secret manager: it will not be shown again.", true);
}));

async function revokeKey(id) {
  if (!confirm(`Revoke key ${id}? Every gateway refuses it within a second.`)) return;
  await api("POST", `/admin/v1/keys/${encodeURIComponent(id)}/revoke`);
  notice(`Revoked key ${id}.`, true);
  await loadKeys();
}

async function rotateKey(id) {
  const overlap = prompt(`Rotate key ${id}: how long may the old key keep working? (0s, 15m, 24h)`, "24h");
  if (overlap === null) return;
  showSecret(await api("POST", `/admin/v1/keys/${encodeURIComponent(id)}/rotate`, { overlap }));
  await loadKeys();
}

// ---- accounts ----------------------------------------------------------------------------

async function loadAccounts() {
  const { accounts } = await api("GET", `/admin/v1/accounts${q({ workspace: workspace() })}`);
  fill("#accounts-table", accounts.map((a) => el("tr", { "data-account": a.id },
    el("td", {}, a.label),
    el("td", {}, el("code", {}, a.id)),
    el("td", {}, el("code", {}, a.identifier)),
    el("td", {}, a.websites.join(", ")),
    el("td", {}, a.tier),
    el("td", {}, a.default ? "yes" : ""),
    el("td", { class: "actions" },
      el("button", { class: "quiet test", "data-id": a.id, onclick: guarded(() => testAccount(a)) }, "Test"),
      " ",
      el("button", { class: "danger remove", "data-id": a.id, onclick: guarded(() => removeAccount(a)) }, "Remove")),
  )));
}

$("#account-form").addEventListener("submit", guarded(async () => {
  const body = {
    workspace: workspace(),
    label: $("#acc-label").value.trim(),
    identifier: $("#acc-identifier").value.trim(),
    crisp_key: $("#acc-key").value.trim(),
    website_id: $("#acc-website").value.trim(),
    tier: $("#acc-tier").value,
    default: $("#acc-default").checked,
  };
  $("#acc-key").value = ""; // the Crisp key never stays in the page
  const account = await api("POST", "/admin/v1/accounts", body);
  $("#account-form").reset();
  notice(`Linked account ${account.label}. Test it to see whether Crisp accepts it.`, true);
  await loadAccounts();
}));

async function testAccount(account) {
  const box = $("#test-result");
  box.className = "card";
  box.textContent = `Testing ${account.label} against Crisp…`;
  box.hidden = false;
  const result = await api("POST", `/admin/v1/accounts/${encodeURIComponent(account.id)}/test${q({ workspace: account.workspace })}`);
  box.className = `card ${result.works ? "works" : "broken"}`;
  box.replaceChildren(
    el("strong", {}, result.works ? `✓ ${result.account} works.` : `✗ ${result.account} does not work yet.`),
    el("p", {}, result.message));
}

async function removeAccount(account) {
  if (!confirm(`Remove account ${account.label}? Calls that name it will be refused.`)) return;
  await api("DELETE", `/admin/v1/accounts/${encodeURIComponent(account.id)}${q({ workspace: account.workspace })}`);
  await loadAccounts();
}

// ---- usage chart -------------------------------------------------------------------------

const COLORS = ["#1f6feb", "#e8590c", "#2f9e44", "#ae3ec9", "#f59f00", "#0c8599", "#d6336c", "#5c7cfa", "#868e96"];
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

async function loadUsage() {
  const data = await api("GET", `/admin/v1/usage/series${q({ workspace: workspace(), by: $("#usage-by").value, since: $("#usage-since").value })}`);
  drawChart($("#usage-chart"), data);
}
$("#usage-by").addEventListener("change", guarded(loadUsage));
$("#usage-since").addEventListener("change", guarded(loadUsage));

// Stacked bars: one bar per UTC day, one colour per key (or action); the busiest eight get
// their own colour, the rest are added up as "others".
function drawChart(box, { days, series }) {
  box.replaceChildren();
  if (!days.length) {
    box.append(el("p", { class: "empty" }, "No calls counted in this window yet."));
    return;
  }
  const shown = series.slice(0, 8);
  if (series.length > 8) {
    shown.push({ name: "others", calls: days.map((_, i) => series.slice(8).reduce((sum, s) => sum + s.calls[i], 0)) });
  }
  const totals = days.map((_, i) => shown.reduce((sum, s) => sum + s.calls[i], 0));
  const max = Math.max(1, ...totals);
  const width = 900, height = 300, left = 48, bottom = 28, top = 12;
  const plot = height - bottom - top;
  const step = (width - left) / days.length;
  const bar = Math.min(60, step * 0.7);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Calls per day" });
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plot - fraction * plot;
    chart.append(svg("line", { x1: left, x2: width, y1: y, y2: y, stroke: "#d9dee6" }));
    chart.append(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "#5b6575" }, Math.round(max * fraction)));
  }
  days.forEach((d, i) => {
    const x = left + i * step + (step - bar) / 2;
    let y = top + plot;
    shown.forEach((s, k) => {
      const h = (s.calls[i] / max) * plot;
      if (h > 0) {
        y -= h;
        const rect = svg("rect", { x, y, width: bar, height: h, fill: COLORS[k % COLORS.length] });
        rect.append(svg("title", {}, `${s.name}: ${s.calls[i]} calls on ${d}`));
        chart.append(rect);
      }
    });
    chart.append(svg("text", { x: x + bar / 2, y: height - 8, "text-anchor": "middle", "font-size": 11, fill: "#5b6575" }, d.slice(5)));
    chart.append(svg("text", { x: x + bar / 2, y: y - 4, "text-anchor": "middle", "font-size": 11, fill: "#1d2430" }, totals[i]));
  });
  box.append(chart);
  box.append(el("div", { class: "legend" }, shown.map((s, k) => {
    const swatch = el("i");
    swatch.style.background = COLORS[k % COLORS.length];
    return el("span", {}, swatch, `${s.name} — ${s.calls.reduce((a, b) => a + b, 0)} calls`);
  })));
}

// ---- audit and reports -------------------------------------------------------------------

async function loadAudit() {
  const { events } = await api("GET", `/admin/v1/audit${q({
    workspace: workspace(), since: $("#audit-since").value.trim(),
    action: $("#audit-action").value.trim(), limit: $("#audit-limit").value.trim(),
  })}`);
  fill("#audit-table", events.map((e) => el("tr", {},
    el("td", {}, day(e.at)),
    el("td", {}, el("code", {}, e.key_id || e.client || "—")),
    el("td", {}, e.action),
    el("td", {}, e.status),
    el("td", {}, e.upstream_status ?? "—"),
    el("td", {}, e.duration_ms),
    el("td", {}, e.count),
    el("td", {}, e.reason || ""),
  )));
}
$("#audit-form").addEventListener("submit", guarded(loadAudit));

async function loadReports() {
  const { reports } = await api("GET", `/admin/v1/reports${q({ workspace: workspace() })}`);
  fill("#reports-table", reports.map((r) => el("tr", {},
    el("td", {}, day(r.at)),
    el("td", {}, el("code", {}, r.key_id)),
    el("td", {}, r.message),
    el("td", {}, r.context || ""),
  )));
}

start();
