// The Tollgate console: a small single-page app over the admin API. The admin or
// tenant-admin token lives in sessionStorage and goes out as a bearer token; the API
// decides what each token may see, so a tenant admin's console shows only its tenant.
// Every value from the API is put in the page as text (never as HTML).
"use strict";

const TOKEN_KEY = "tollgate.token";
const state = { token: sessionStorage.getItem(TOKEN_KEY), me: null, tenants: [], timer: null };

// ---- helpers -------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function api(path, opts = {}) {
  const resp = await fetch("/admin/v1" + path, {
    ...opts,
    headers: { authorization: "Bearer " + state.token, "content-type": "application/json", ...(opts.headers || {}) },
  });
  const text = await resp.text();
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  // A token that stopped working (revoked) ends the session; a wrong one at sign-in
  // is only an error for the form.
  if (resp.status === 401 && state.me) { signOut(); throw new Error("signed out: the token is no longer valid"); }
  if (!resp.ok) throw new Error((body && body.error && body.error.message) || `${resp.status}`);
  return body;
}

const fmt = {
  time(ms) {
    const d = new Date(ms), p = (n, w = 2) => String(n).padStart(w, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  },
  usd(v) {
    if (v == null) return "–";
    if (v === 0) return "$0";
    if (Math.abs(v) >= 1) return "$" + v.toFixed(2);
    const digits = Math.min(9, Math.max(2, 1 - Math.floor(Math.log10(Math.abs(v))) + 2));
    return "$" + v.toFixed(digits);
  },
  ms(v) { return v == null ? "–" : v >= 10000 ? (v / 1000).toFixed(1) + " s" : v + " ms"; },
  // Short axis labels.
  usdTick(v) { return v === 0 ? "$0" : "$" + Number(v.toPrecision(3)).toString(); },
  msTick(v) { return v >= 10000 ? (v / 1000).toFixed(1) + " s" : Number(v.toPrecision(3)) + " ms"; },
  int(v) { return v == null ? "–" : Number(v).toLocaleString("en-US"); },
  compact(v) {
    if (v == null) return "–";
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
    return String(Math.round(v * 100) / 100);
  },
};

function statusCell(s) {
  return h("span", { class: "status s" + String(s)[0] }, s);
}

// Metadata arrives as [key, value] pairs, in the order the client sent them.
function metaPairs(meta) {
  if (Array.isArray(meta)) return meta;
  return Object.entries(meta || {});
}

function metaChips(meta) {
  return metaPairs(meta).map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`));
}

function tokens(u) {
  return u ? `${fmt.int(u.input_tokens)} in / ${fmt.int(u.output_tokens)} out` : "–";
}

function route() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query || "") };
}

function go(path, params) {
  const q = params && [...params].length ? "?" + params.toString() : "";
  location.hash = "#/" + path + q;
}

function table(columns, rows, onClick) {
  const thead = h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.title))));
  const tbody = h("tbody", {});
  for (const r of rows) tbody.appendChild(tableRow(columns, r, onClick));
  return h("div", { class: "table-wrap" }, h("table", {}, thead, tbody));
}

function tableRow(columns, r, onClick) {
  const tr = h("tr", { class: onClick ? "clickable" : null, "data-id": r.request_id || r.trace_id || null },
    columns.map((c) => h("td", { class: [c.num ? "num" : "", c.wrap ? "wrap" : ""].join(" ").trim() || null }, c.cell(r))));
  if (onClick) tr.addEventListener("click", () => onClick(r));
  return tr;
}

function card(k, v) {
  return h("div", { class: "card" }, h("div", { class: "k" }, k), h("div", { class: "v" }, v));
}

function stopLive() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

// ---- sign-in -------------------------------------------------------------------------

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.me = null;
  stopLive();
  render();
}

function loginView(app, error) {
  document.getElementById("top").hidden = true;
  const input = h("input", { type: "password", id: "token", placeholder: "tga-… or a tenant admin token", autocomplete: "off" });
  const err = h("div", { class: "error", id: "login-error" }, error || "");
  const form = h("form", { class: "panel login", id: "login" },
    h("h1", {}, "Sign in to Tollgate"),
    h("p", { class: "muted" }, "Use the platform admin token, or a tenant admin token to see one tenant."),
    input, err, h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    state.token = input.value.trim();
    try {
      state.me = await api("/whoami");
      sessionStorage.setItem(TOKEN_KEY, state.token);
      if (!location.hash || location.hash === "#/") go("logs");
      render();
    } catch (ex) {
      state.token = null;
      err.textContent = "That token was not accepted.";
    }
  });
  app.replaceChildren(form);
  input.focus();
}

// ---- logs ----------------------------------------------------------------------------

const LOG_FILTERS = ["tenant", "team", "user", "key", "model", "provider", "status", "meta", "q", "since", "until"];

function logQuery(params, extra) {
  const q = new URLSearchParams();
  for (const k of LOG_FILTERS) {
    const v = params.get(k);
    if (!v) continue;
    if (k === "meta") v.split(",").map((s) => s.trim()).filter(Boolean).forEach((m) => q.append("meta", m));
    else q.set(k, v);
  }
  for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
  return q;
}

function tenantSelect(value, allowAll = true) {
  if (state.me.role === "tenant") {
    return h("select", { name: "tenant", disabled: true }, h("option", { value: state.me.tenant }, state.me.tenant));
  }
  const sel = h("select", { name: "tenant" }, allowAll ? h("option", { value: "" }, "All tenants") : null,
    state.tenants.map((t) => h("option", { value: t.id, selected: t.id === value }, t.id)));
  return sel;
}

function filterBar(params, fields, onApply) {
  const form = h("form", { class: "filters", id: "filters" });
  const inputs = {};
  for (const f of fields) {
    let input;
    if (f.name === "tenant") input = tenantSelect(params.get("tenant"));
    else if (f.options) input = h("select", { name: f.name }, f.options.map(([v, t]) => h("option", { value: v, selected: (params.get(f.name) || "") === v }, t)));
    else input = h("input", { name: f.name, value: params.get(f.name) || "", placeholder: f.placeholder || "", size: f.size || 12 });
    inputs[f.name] = input;
    form.appendChild(h("label", {}, f.label, input));
  }
  form.appendChild(h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const [k, input] of Object.entries(inputs)) if (input.value && !input.disabled) p.set(k, input.value);
    onApply(p);
  });
  return form;
}

const RANGES = [["", "Any time"], ["15m", "Last 15 min"], ["1h", "Last hour"], ["24h", "Last 24 h"], ["7d", "Last 7 days"], ["30d", "Last 30 days"]];

async function logsView(app, params) {
  const bar = filterBar(params, [
    { name: "tenant", label: "Tenant" },
    { name: "meta", label: "Metadata", placeholder: "env=prod,project=x", size: 16 },
    { name: "team", label: "Team" },
    { name: "user", label: "User" },
    { name: "key", label: "Key id" },
    { name: "model", label: "Model" },
    { name: "provider", label: "Provider" },
    { name: "status", label: "Status", options: [["", "Any"], ["2xx", "2xx"], ["4xx", "4xx"], ["5xx", "5xx"], ["error", "Errors"], ["429", "429"], ["499", "499"]] },
    { name: "since", label: "Time", options: RANGES },
    { name: "q", label: "Request or trace id", placeholder: "req_… or trace", size: 18 },
  ], (p) => go("logs", p));
  const live = h("span", { class: "live", id: "live" }, h("span", { class: "dot" }), "Live");
  const head = h("div", { class: "row" }, h("h1", {}, "Request logs"), h("div", { style: "text-align:right;flex:0 0 auto" }, live));
  const columns = [
    { title: "Time", cell: (r) => fmt.time(r.ts_ms) },
    { title: "Tenant", cell: (r) => r.tenant_id },
    { title: "Team", cell: (r) => r.team || "–" },
    { title: "User", cell: (r) => r.user || "–" },
    { title: "Model", cell: (r) => r.served_model && r.served_model !== r.requested_model ? `${r.requested_model} → ${r.served_model}` : r.requested_model || "–" },
    { title: "Provider", cell: (r) => r.provider || "–" },
    { title: "Status", cell: (r) => statusCell(r.status) },
    { title: "Latency", num: true, cell: (r) => fmt.ms(r.latency_ms) },
    { title: "Tokens", num: true, cell: (r) => tokens(r.usage) },
    { title: "Cost", num: true, cell: (r) => fmt.usd(r.cost_nano / 1e9) },
    { title: "Metadata", wrap: true, cell: (r) => metaChips(r.metadata) },
  ];
  const open = (r) => go("logs/" + encodeURIComponent(r.request_id), new URLSearchParams({ tenant: r.tenant_id }));
  const wrap = h("div", { id: "log-table" }, h("p", { class: "muted" }, "Loading…"));
  const more = h("button", { class: "secondary", id: "more" }, "Load older");
  app.replaceChildren(head, bar, wrap, h("p", {}, more));

  const seen = new Set();
  let rows = [];
  const first = await api("/logs?" + logQuery(params, { limit: "100" }));
  rows = first.data;
  rows.forEach((r) => seen.add(r.request_id));
  const t = table(columns, rows, open);
  const tbody = t.querySelector("tbody");
  t.hidden = !rows.length;
  const empty = rows.length ? null : h("p", { class: "muted", id: "empty" }, "No requests match these filters yet.");
  wrap.replaceChildren(...[empty, t].filter(Boolean));
  more.disabled = rows.length < 100;
  more.addEventListener("click", async () => {
    const oldest = rows[rows.length - 1];
    if (!oldest) return;
    const older = await api("/logs?" + logQuery(params, { limit: "100", before: `${oldest.ts_ms}:${oldest.request_id}` }));
    for (const r of older.data) if (!seen.has(r.request_id)) { seen.add(r.request_id); rows.push(r); tbody.appendChild(tableRow(columns, r, open)); }
    more.disabled = older.data.length < 100;
  });

  // Live: newest rows are polled every second and put on top.
  const newestTs = () => (rows.length ? rows[0].ts_ms : Date.now() - 3600000);
  const sinceFilter = params.get("since");
  const poll = async () => {
    try {
      const since = sinceFilter && !rows.length ? sinceFilter : String(newestTs() - 2000);
      const fresh = await api("/logs?" + logQuery(params, { limit: "100", since }));
      const add = fresh.data.filter((r) => !seen.has(r.request_id));
      if (!add.length) return;
      add.reverse().forEach((r) => {
        seen.add(r.request_id);
        rows.unshift(r);
        const tr = tableRow(columns, r, open);
        tr.classList.add("fresh");
        tbody.insertBefore(tr, tbody.firstChild);
      });
      t.hidden = false;
      const empty = document.getElementById("empty");
      if (empty) empty.remove();
      live.classList.remove("off");
    } catch (e) {
      live.classList.add("off");
    }
  };
  if (!params.get("until")) state.timer = setInterval(poll, 1000);
  else live.classList.add("off");
}

function kvTable(pairs) {
  return h("div", { class: "table-wrap" }, h("table", {}, h("tbody", {}, pairs.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { class: "wrap" }, v))))));
}

async function logDetailView(app, id, params) {
  const q = params.get("tenant") ? "?tenant=" + encodeURIComponent(params.get("tenant")) : "";
  const r = await api("/logs/" + encodeURIComponent(id) + q);
  const cost = r.cost || {};
  const back = h("a", { href: "#/logs" }, "← Logs");
  const cards = h("div", { class: "grid", id: "summary" },
    card("Status", statusCell(r.status)),
    card("Requested model", r.requested_model || "–"),
    card("Served model", r.served_model || "–"),
    card("Provider", r.provider || "–"),
    card("Latency", fmt.ms(r.latency_ms)),
    card("Time to first token", fmt.ms(r.ttft_ms)),
    card("Total cost", fmt.usd(cost.total_usd != null ? cost.total_usd : r.cost_nano / 1e9)),
    card("Tokens", tokens(r.usage)));
  const who = kvTable([
    ["Request id", r.request_id],
    ["Time", fmt.time(r.ts_ms)],
    ["Tenant", r.tenant_id],
    ["Key", r.key_id || "–"],
    ["Team", r.team || "–"],
    ["User", r.user || "–"],
    ["Endpoint", r.endpoint + (r.stream ? " (stream)" : "")],
    ["Trace", h("a", { href: "#/traces/" + encodeURIComponent(r.trace_id) + (q || "") }, r.trace_id)],
    ["Bundle version", r.bundle_version == null ? "config file" : String(r.bundle_version)],
    ["Error", r.error || "–"],
  ]);
  const meta = metaPairs(r.metadata);
  const metaTable = meta.length ? table([{ title: "Key", cell: (x) => x[0] }, { title: "Value", wrap: true, cell: (x) => x[1] }], meta) : h("p", { class: "muted" }, "No metadata.");
  const costRows = [
    ["Input", cost.input_usd, r.usage && r.usage.input_tokens],
    ["Output", cost.output_usd, r.usage && r.usage.output_tokens],
    ["Cache read", cost.cache_read_usd, r.usage && r.usage.cache_read_tokens],
    ["Cache write", cost.cache_write_usd, r.usage && r.usage.cache_write_tokens],
    ["Total", cost.total_usd, null],
  ];
  const costTable = h("div", { id: "cost" }, table([
    { title: "Part", cell: (x) => x[0] },
    { title: "Tokens", num: true, cell: (x) => (x[2] == null ? "" : fmt.int(x[2])) },
    { title: "Cost", num: true, cell: (x) => fmt.usd(x[1]) },
  ], costRows), h("p", { class: "muted" }, cost.priced_as ? `Priced as ${cost.priced_as}${cost.usage_estimated ? " (usage estimated: the stream was cut)" : ""}.` : "Not priced (no provider served it, or no price is known)."));
  const attempts = r.attempts && r.attempts.length ? table([
    { title: "#", cell: (a) => r.attempts.indexOf(a) + 1 },
    { title: "Provider", cell: (a) => a.provider },
    { title: "Model", cell: (a) => a.model },
    { title: "Target", num: true, cell: (a) => a.target },
    { title: "Status", cell: (a) => (a.status ? statusCell(a.status) : "no answer") },
    { title: "Latency", num: true, cell: (a) => fmt.ms(a.latency_ms) },
    { title: "Error", wrap: true, cell: (a) => a.error || "" },
  ], r.attempts) : h("p", { class: "muted" }, "No upstream attempt (refused before routing).");
  const decisions = r.decisions && r.decisions.length ? table([
    { title: "Plugin", cell: (d) => d.plugin },
    { title: "Hook", cell: (d) => ({ "inspect-request": "request guardrail", "inspect-response": "response guardrail" })[d.hook] || "" },
    { title: "Decision", cell: (d) => d.outcome },
    { title: "Reason", wrap: true, cell: (d) => d.detail || "" },
    { title: "Found", wrap: true, cell: (d) => (d.findings || []).map((f) => h("span", { class: "chip finding" }, `${f.rule} (${f.kind}) ×${f.count}`)) },
    { title: "Labels", wrap: true, cell: (d) => (d.annotations || []).map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`)) },
    { title: "Time", num: true, cell: (d) => d.micros + " µs" },
  ], r.decisions) : h("p", { class: "muted" }, "No plugin ran.");
  let bodies;
  if (r.bodies) {
    const pretty = (s) => { try { return JSON.stringify(JSON.parse(s), null, 2); } catch { return s; } };
    bodies = h("div", { class: "row", id: "bodies" },
      h("div", {}, h("h3", {}, "Request"), h("pre", {}, pretty(r.bodies.request))),
      h("div", {}, h("h3", {}, "Response"), h("pre", {}, pretty(r.bodies.response))));
    if (r.bodies.request_truncated || r.bodies.response_truncated) bodies.appendChild(h("p", { class: "muted" }, "Cut at the capture limit."));
  } else {
    bodies = h("p", { class: "muted", id: "bodies" }, r.body_capture ? "No bodies were kept for this request." : "Body capture is off for this tenant.");
  }
  app.replaceChildren(back, h("h1", {}, "Request " + r.request_id), cards,
    h("div", { class: "row" }, h("div", {}, h("h2", {}, "Request"), who), h("div", {}, h("h2", {}, "Metadata"), metaTable, h("h2", {}, "Tokens and cost"), costTable)),
    h("h2", {}, "Routing attempts"), attempts,
    h("h2", {}, "Plugin decisions"), decisions,
    h("h2", {}, "Bodies"), bodies);
}

// ---- traces --------------------------------------------------------------------------

async function tracesView(app, params) {
  const bar = filterBar(params, [{ name: "tenant", label: "Tenant" }, { name: "since", label: "Time", options: RANGES.slice(1) }], (p) => go("traces", p));
  const q = new URLSearchParams();
  for (const k of ["tenant", "since"]) if (params.get(k)) q.set(k, params.get(k));
  const data = (await api("/traces?" + q)).data;
  const t = table([
    { title: "Trace", cell: (x) => x.trace_id },
    { title: "Tenant", cell: (x) => x.tenant_id },
    { title: "Requests", num: true, cell: (x) => x.requests },
    { title: "Errors", num: true, cell: (x) => x.errors },
    { title: "Started", cell: (x) => fmt.time(x.first_ms) },
    { title: "Duration", num: true, cell: (x) => fmt.ms(x.last_ms - x.first_ms) },
    { title: "Tokens", num: true, cell: (x) => fmt.int(x.tokens) },
    { title: "Cost", num: true, cell: (x) => fmt.usd(x.cost_usd) },
    { title: "Models", wrap: true, cell: (x) => x.models.join(", ") },
  ], data, (x) => go("traces/" + encodeURIComponent(x.trace_id), new URLSearchParams({ tenant: x.tenant_id })));
  app.replaceChildren(h("h1", {}, "Traces"), h("p", { class: "muted" }, "Requests sharing an x-portkey-trace-id header form one session."), bar,
    data.length ? t : h("p", { class: "muted" }, "No traces in this range."));
}

async function traceView(app, id, params) {
  const q = params.get("tenant") ? "?tenant=" + encodeURIComponent(params.get("tenant")) : "";
  const tr = await api("/traces/" + encodeURIComponent(id) + q);
  const span = Math.max(1, tr.last_ms - tr.first_ms);
  const t = table([
    { title: "Time", cell: (r) => fmt.time(r.ts_ms) },
    { title: "Timeline", cell: (r) => h("div", { class: "waterfall" }, h("span", {
      class: r.status >= 400 ? "err" : null,
      style: `left:${((r.ts_ms - tr.first_ms) / span) * 100}%;width:${Math.max(0.5, (r.latency_ms / span) * 100)}%`,
    })) },
    { title: "Model", cell: (r) => r.served_model || r.requested_model || "–" },
    { title: "Provider", cell: (r) => r.provider || "–" },
    { title: "Status", cell: (r) => statusCell(r.status) },
    { title: "Latency", num: true, cell: (r) => fmt.ms(r.latency_ms) },
    { title: "Tokens", num: true, cell: (r) => tokens(r.usage) },
    { title: "Cost", num: true, cell: (r) => fmt.usd(r.cost_nano / 1e9) },
  ], tr.data, (r) => go("logs/" + encodeURIComponent(r.request_id), new URLSearchParams({ tenant: r.tenant_id })));
  app.replaceChildren(h("a", { href: "#/traces" }, "← Traces"), h("h1", {}, "Trace " + id),
    h("div", { class: "grid" }, card("Requests", tr.requests), card("Duration", fmt.ms(tr.last_ms - tr.first_ms)), card("Cost", fmt.usd(tr.cost_usd)), card("Started", fmt.time(tr.first_ms))),
    h("h2", {}, "Requests"), t);
}

// ---- analytics -----------------------------------------------------------------------

async function analyticsView(app, params) {
  const by = params.get("by") || "team";
  const bar = filterBar(params, [
    { name: "tenant", label: "Tenant" },
    { name: "since", label: "Range", options: [["1h", "Last hour"], ["24h", "Last 24 h"], ["7d", "Last 7 days"], ["30d", "Last 30 days"]] },
    { name: "by", label: "Group by", placeholder: "team, user, model, provider, metadata.env", size: 18 },
  ], (p) => go("analytics", p));
  if (!params.get("by")) bar.querySelector("[name=by]").value = by;
  // The range shown is the range fetched, default or not.
  const since = params.get("since") || "24h";
  bar.querySelector("[name=since]").value = since;
  const q = new URLSearchParams({ since, by });
  if (params.get("tenant")) q.set("tenant", params.get("tenant"));
  const a = await api("/analytics?" + q);
  const named = (s) => s.group == null ? "(none)" : s.group;
  const charts = h("div", { class: "row", id: "charts" });
  const col = (k) => a.series.map((s) => ({ name: named(s), values: s[k] }));
  Charts.bars(charts, "Cost", a.buckets, a.bucket_ms, col("cost_usd"), fmt.usd, fmt.usdTick);
  Charts.bars(charts, "Requests", a.buckets, a.bucket_ms, col("requests"), fmt.compact);
  Charts.bars(charts, "Tokens", a.buckets, a.bucket_ms, col("tokens"), fmt.compact);
  Charts.bars(charts, "Errors", a.buckets, a.bucket_ms, col("errors"), fmt.compact);
  Charts.lines(charts, "Latency (all requests)", a.buckets, a.bucket_ms, [
    { name: "p50", values: a.total.latency_p50_ms },
    { name: "p95", values: a.total.latency_p95_ms },
    { name: "p99", values: a.total.latency_p99_ms },
  ], (v) => fmt.ms(Math.round(v)), fmt.msTick);
  const totals = table([
    { title: by, cell: (s) => named(s) },
    { title: "Requests", num: true, cell: (s) => fmt.int(s.total.requests) },
    { title: "Errors", num: true, cell: (s) => fmt.int(s.total.errors) },
    { title: "Tokens", num: true, cell: (s) => fmt.int(s.total.tokens) },
    { title: "Cost", num: true, cell: (s) => fmt.usd(s.total.cost_usd) },
    { title: "p50", num: true, cell: (s) => fmt.ms(s.total.latency_p50_ms) },
    { title: "p95", num: true, cell: (s) => fmt.ms(s.total.latency_p95_ms) },
    { title: "p99", num: true, cell: (s) => fmt.ms(s.total.latency_p99_ms) },
  ], a.series);
  app.replaceChildren(h("h1", {}, "Analytics"), bar,
    h("div", { class: "grid" }, card("Requests", fmt.int(a.total.total.requests)), card("Cost", fmt.usd(a.total.total.cost_usd)),
      card("Tokens", fmt.int(a.total.total.tokens)), card("Errors", fmt.int(a.total.total.errors)), card("p95 latency", fmt.ms(a.total.total.latency_p95_ms))),
    h("h2", {}, "Over time"), charts, h("h2", {}, "By " + by), totals);
}

// ---- budgets -------------------------------------------------------------------------

async function budgetsView(app, params) {
  const bar = filterBar(params, [{ name: "tenant", label: "Tenant" }], (p) => go("budgets", p));
  const q = params.get("tenant") ? "?tenant=" + encodeURIComponent(params.get("tenant")) : "";
  const data = (await api("/budgets" + q)).data;
  const amount = (b, v) => (b.metric === "cost" ? fmt.usd(v) : fmt.int(v));
  const t = table([
    { title: "Tenant", cell: (b) => b.tenant },
    { title: "Budget", cell: (b) => b.budget },
    { title: "Scope", cell: (b) => `${b.scope} = ${b.value}` },
    { title: "Metric", cell: (b) => `${b.metric} / ${b.period} (${b.window})` },
    { title: "Limit", num: true, cell: (b) => amount(b, b.limit) },
    { title: "Spent", num: true, cell: (b) => amount(b, b.spent) },
    { title: "Reserved", num: true, cell: (b) => amount(b, b.reserved) },
    { title: "Remaining", num: true, cell: (b) => amount(b, b.remaining) },
    { title: "Used", cell: (b) => h("div", { class: "bar", title: b.used_pct + "%" }, h("span", { class: b.used_pct >= 100 ? "bad" : b.used_pct >= 80 ? "warn" : null, style: `width:${Math.min(100, b.used_pct)}%` })) },
    { title: "Resets", cell: (b) => (b.resets_at ? fmt.time(b.resets_at_ms) : "never") },
  ], data);
  app.replaceChildren(h("h1", {}, "Budgets"), bar, data.length ? t : h("p", { class: "muted" }, "No budget has been enforced yet."));
}

// ---- bundles -------------------------------------------------------------------------

async function bundlesView(app, params) {
  const scopes = state.me.role === "tenant" ? [state.me.tenant] : [null, ...state.tenants.map((t) => t.id)];
  const rows = [];
  for (const s of scopes) {
    const base = s == null ? "/bundle" : "/tenants/" + encodeURIComponent(s) + "/bundle";
    let versions = [];
    try { versions = (await api(base + "/versions")).data; } catch (e) { versions = []; }
    let layers = null;
    if (s != null) { try { layers = (await api("/tenants/" + encodeURIComponent(s))).layers; } catch (e) { layers = null; } }
    rows.push({ scope: s, base, versions, layers, active: versions.find((v) => v.active) });
  }
  const list = h("div", { id: "bundles" });
  for (const r of rows) {
    const name = r.scope == null ? "Platform (runs first for every tenant)" : "Tenant " + r.scope;
    const section = h("div", { class: "panel", style: "margin-bottom:12px", "data-scope": r.scope == null ? "*" : r.scope },
      h("h2", { style: "margin-top:0" }, name),
      r.active ? h("p", {}, `Active: version ${r.active.version} by ${r.active.author}, ${fmt.time(r.active.created_at_ms)} — ${r.active.summary}`)
        : h("p", { class: "muted" }, r.scope == null ? "No platform bundle applied." : "No bundle of its own applied."));
    if (r.layers) section.appendChild(layersView(r.layers));
    if (r.versions.length) {
      const out = h("div", { class: "muted" });
      section.appendChild(table([
        { title: "Version", num: true, cell: (v) => v.version },
        { title: "Active", cell: (v) => (v.active ? "yes" : "") },
        { title: "When", cell: (v) => fmt.time(v.created_at_ms) },
        { title: "Author", cell: (v) => v.author },
        { title: "Hash", cell: (v) => v.hash.slice(0, 12) },
        { title: "Message", wrap: true, cell: (v) => v.message || "" },
        { title: "Summary", wrap: true, cell: (v) => v.summary },
        { title: "", cell: (v) => v.active ? "" : h("span", {},
          h("button", { class: "secondary diff", onclick: async () => {
            const d = await api(`${r.base}/diff?from=${v.version}&to=${r.active.version}`);
            out.replaceChildren(h("h3", {}, `Changes from ${v.version} to ${r.active.version}`), h("pre", {}, d.changes.join("\n") || "(no changes)"));
          } }, "Diff"), " ",
          h("button", { class: "rollback", onclick: async () => {
            if (!confirm(`Roll back ${name} to version ${v.version}?`)) return;
            try { await api(r.base + "/rollback", { method: "POST", body: JSON.stringify({ version: v.version }) }); render(); }
            catch (e) { out.replaceChildren(h("p", { class: "error" }, e.message)); }
          } }, "Roll back")) },
      ], r.versions));
      section.appendChild(out);
    }
    list.appendChild(section);
  }
  app.replaceChildren(h("h1", {}, "Policy bundles"), list);
}

/** The layers a tenant's requests pass through, in order; the pinned one is locked. */
function layersView(l) {
  const names = (ps) => (ps.length ? ps.join(" → ") : "none");
  const allow = (v) => (v == null ? "any" : v.join(", "));
  const pinned = l.pinned;
  return h("ol", { class: "layers" },
    h("li", {}, h("strong", {}, "Platform bundle"), ` (every tenant${l.platform.version ? ", v" + l.platform.version : ""}): `, names(l.platform.plugins)),
    h("li", { class: "locked", title: "Only the platform admin can change these" },
      h("span", { class: "badge" }, "locked"), " ", h("strong", {}, "Pinned by the operator"), ` (${pinned.source}): `, names(pinned.plugins),
      `; providers: ${allow(pinned.allowed_providers)}; models: ${allow(pinned.allowed_models)}`),
    h("li", {}, h("strong", {}, "Tenant's own bundle"), ` (${l.own.version ? "v" + l.own.version : "none applied"}): `, names(l.own.plugins),
      l.own.default_provider ? `; default provider: ${l.own.default_provider}` : ""));
}

// ---- shell ---------------------------------------------------------------------------

async function render() {
  stopLive();
  const app = document.getElementById("app");
  if (!state.token) return loginView(app);
  try {
    if (!state.me) state.me = await api("/whoami");
    if (state.me.role === "platform" && !state.tenants.length) state.tenants = (await api("/tenants")).data;
  } catch (e) {
    return loginView(app, e.message);
  }
  document.getElementById("top").hidden = false;
  document.getElementById("who").textContent = state.me.role === "platform" ? "Platform admin" : "Tenant admin · " + state.me.tenant;
  const { parts, params } = route();
  const page = parts[0] || "logs";
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === page));
  try {
    if (page === "logs" && parts[1]) await logDetailView(app, parts[1], params);
    else if (page === "logs") await logsView(app, params);
    else if (page === "traces" && parts[1]) await traceView(app, parts[1], params);
    else if (page === "traces") await tracesView(app, params);
    else if (page === "analytics") await analyticsView(app, params);
    else if (page === "budgets") await budgetsView(app, params);
    else if (page === "bundles") await bundlesView(app, params);
    else app.replaceChildren(h("p", {}, "No such page."));
  } catch (e) {
    app.replaceChildren(h("p", { class: "error" }, e.message));
  }
}

document.getElementById("signout").addEventListener("click", signOut);
window.addEventListener("hashchange", render);
render();
