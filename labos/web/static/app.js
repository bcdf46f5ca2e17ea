/* labos console: shared helpers for every page (API calls, live events, DOM building, formatting).
   Pages read the same REST API scripts use; all text goes through textContent (no HTML injection). */
"use strict";

const labos = (() => {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const body = document.body;
  const role = body.dataset.role || "viewer";
  const RANK = { viewer: 0, operator: 1, admin: 2 };

  /* ---------- API */
  class ApiError extends Error {
    constructor(status, detail) {
      super(typeof detail === "string" ? detail : (Array.isArray(detail) ? detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ") : `HTTP ${status}`));
      this.status = status;
    }
  }
  async function api(path, { method = "GET", body: payload } = {}) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, { method, headers, credentials: "same-origin", body: payload === undefined ? undefined : JSON.stringify(payload) });
    if (res.status === 401) {
      location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
      throw new ApiError(401, "signed out");
    }
    if (res.status === 204) return null;
    let data = null;
    try { data = await res.json(); } catch (_) { /* empty body */ }
    if (!res.ok) throw new ApiError(res.status, data?.detail ?? res.statusText);
    return data;
  }

  /* ---------- DOM */
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  const $ = (sel, root = document) => root.querySelector(sel);
  function replace(target, ...children) {
    const node = typeof target === "string" ? $(target) : target;
    if (node) node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
    return node;
  }

  /* ---------- formatting */
  const fmt = {
    pct: (v, digits = 0) => (v === null || v === undefined ? "—" : `${(100 * v).toFixed(digits)}%`),
    num: (v, digits = 0) => (v === null || v === undefined || Number.isNaN(v) ? "—" : Number(v).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: digits })),
    date: (s) => (s ? new Date(s.endsWith("Z") || /[+-]\d\d:\d\d$/.test(s) ? s : `${s}Z`) : null),
    time(s) { const d = fmt.date(s); return d ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }) : "—"; },
    clock(min) { if (min === null || min === undefined) return "—"; const t = Math.round(min); return `t+${Math.floor(t / 60)}:${String(t % 60).padStart(2, "0")}`; },
    datetime(s) { const d = fmt.date(s); return d ? d.toLocaleString([], { dateStyle: "medium", timeStyle: "short", hour12: false }) : "—"; },
    ago(s) {
      const d = fmt.date(s); if (!d) return "—";
      const sec = Math.round((Date.now() - d.getTime()) / 1000);
      if (sec < 45) return "just now";
      if (sec < 3600) return `${Math.round(sec / 60)} min ago`;
      if (sec < 86400) return `${Math.round(sec / 3600)} h ago`;
      return d.toLocaleDateString();
    },
    minutes(m) { if (m === null || m === undefined) return "—"; return m >= 120 ? `${(m / 60).toFixed(1)} h` : `${Math.round(m)} min`; },
  };

  const badge = (status) => el("span", { class: `badge ${String(status || "unknown").replace(/[^a-z_-]/gi, "")}` }, String(status || "unknown").replace(/_/g, " "));
  function frac(v, threshold = 0.5) {
    if (v === null || v === undefined) return el("span", { class: "muted" }, "—");
    const bar = el("span", { class: `bar${v >= threshold ? " hit" : ""}` }, el("i", { style: `width:${Math.max(0, Math.min(1, v)) * 100}%` }), el("b"));
    return el("span", { class: "frac", title: `${(100 * v).toFixed(1)} wt% target` }, bar, el("span", {}, fmt.pct(v)));
  }
  /* a chemical formula with subscripts: LiMn2O4 -> LiMn<sub>2</sub>O<sub>4</sub> */
  function formula(text, cls = "") {
    const node = el("span", { class: `formula ${cls}`.trim(), title: text });
    for (const part of String(text ?? "").split(/(\d+(?:\.\d+)?)/)) {
      if (!part) continue;
      node.append(/^\d/.test(part) ? el("sub", {}, part) : document.createTextNode(part));
    }
    return node;
  }
  const link = (href, text, cls) => el("a", { href, class: cls }, text);
  const expLink = (id) => link(`/experiments/${encodeURIComponent(id)}`, id, "mono");
  const sampleLink = (id) => link(`/samples/${encodeURIComponent(id)}`, id, "mono");

  /* columns: [{label, value(row) -> node|string, num:true}] */
  function table(columns, rows, { empty = "Nothing here yet.", key } = {}) {
    if (!rows || rows.length === 0) return el("div", { class: "empty" }, empty);
    const thead = el("thead", {}, el("tr", {}, columns.map((c) => el("th", { class: c.num ? "num" : null }, c.label))));
    const tbody = el("tbody", {}, rows.map((r) => el("tr", { dataset: key ? { key: key(r) } : {} }, columns.map((c) => {
      const v = c.value(r);
      return el("td", { class: c.num ? "num" : null }, v === null || v === undefined ? "—" : v);
    }))));
    return el("table", { class: "data" }, thead, tbody);
  }

  function toast(message, kind = "") {
    const t = el("div", { class: `toast ${kind}` }, message);
    $("#toasts")?.append(t);
    setTimeout(() => t.remove(), 5200);
  }
  function failed(err) { toast(err.message || String(err), "bad"); console.error(err); }

  const can = (need) => RANK[role] >= RANK[need];

  /* ---------- live events (server-sent events from /api/events/stream) */
  const handlers = [];
  let source = null;
  let lastId = null;
  function on(prefix, fn) { handlers.push([prefix, fn]); }
  function setLive(state, text) {
    const node = $("#live");
    if (!node) return;
    node.className = `live ${state}`;
    node.querySelector(".txt").textContent = text;
  }
  function connect(after) {
    if (after !== undefined && after !== null) lastId = after;
    if (source) source.close();
    const url = lastId === null ? "/api/events/stream" : `/api/events/stream?after=${lastId}`;
    source = new EventSource(url, { withCredentials: true });
    source.onopen = () => setLive("on", "live");
    source.onerror = () => setLive("off", "reconnecting");
    source.addEventListener("auth", () => { source.close(); location.href = "/login"; });
    source.onmessage = (msg) => {
      let ev;
      try { ev = JSON.parse(msg.data); } catch (_) { return; }
      lastId = ev.id;
      document.dispatchEvent(new CustomEvent("labos:event", { detail: ev }));
      for (const [prefix, fn] of handlers) {
        if (ev.kind.startsWith(prefix)) { try { fn(ev); } catch (e) { console.error(e); } }
      }
    };
  }

  /* many events in a burst cause one refresh, and a steady stream still refreshes every few ms*4 */
  function debounce(fn, ms = 400, maxWait = 4 * ms) {
    let t = null;
    let first = null;
    return (...args) => {
      const now = Date.now();
      first ??= now;
      clearTimeout(t);
      const run = () => { first = null; t = null; fn(...args); };
      if (now - first >= maxWait) run();
      else t = setTimeout(run, Math.min(ms, maxWait - (now - first)));
    };
  }

  /* ---------- plots (plotly.js served from this server) */
  const PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
  const PLOT_LAYOUT = {
    margin: { l: 58, r: 18, t: 12, b: 46 },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
    font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#334155" },
    legend: { orientation: "h", y: 1.08, x: 0, bgcolor: "rgba(0,0,0,0)" },
    xaxis: { gridcolor: "#eef2f7", zerolinecolor: "#e2e8f0", linecolor: "#cbd5e1" },
    yaxis: { gridcolor: "#eef2f7", zerolinecolor: "#e2e8f0", linecolor: "#cbd5e1" },
    hoverlabel: { font: { family: "system-ui, sans-serif" } },
  };
  function merge(a, b) {
    const out = { ...a };
    for (const [k, v] of Object.entries(b || {})) out[k] = v && typeof v === "object" && !Array.isArray(v) && a[k] ? merge(a[k], v) : v;
    return out;
  }
  function plot(target, traces, layout = {}) {
    const node = typeof target === "string" ? $(target) : target;
    if (!window.Plotly) { replace(node, el("div", { class: "placeholder" }, "plotting library not loaded")); return Promise.resolve(); }
    if (node.classList.contains("is-empty")) { node.classList.remove("is-empty"); node.replaceChildren(); }
    return window.Plotly.react(node, traces, merge(PLOT_LAYOUT, layout), PLOT_CONFIG);
  }
  function placeholder(target, text) {
    const node = typeof target === "string" ? $(target) : target;
    if (window.Plotly && node) window.Plotly.purge(node);
    node?.classList.add("is-empty");
    replace(node, el("div", { class: "placeholder" }, text));
  }

  /* ---------- page chrome: intervention badge, live connection */
  async function refreshInterventionCount() {
    const node = $("#iv-count");
    if (!node) return;
    try {
      const ivs = await api("/api/interventions?status=open");
      node.textContent = String(ivs.length);
      node.hidden = ivs.length === 0;
    } catch (_) { node.hidden = true; }
  }
  on("intervention.", debounce(refreshInterventionCount, 300));
  document.addEventListener("DOMContentLoaded", () => {
    refreshInterventionCount();
    if (!body.dataset.manualLive) connect(null);
  });

  return { api, el, $, replace, fmt, badge, frac, formula, link, expLink, sampleLink, table, toast, failed, can, on, connect, debounce, plot, placeholder, ApiError, role, csrf };
})();
