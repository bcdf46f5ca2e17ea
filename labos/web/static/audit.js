/* Audit log with filters and paging. */
"use strict";
(() => {
  const { api, el, replace, fmt, badge, table, failed } = labos;
  const form = labos.$("#filters");
  let rows = [];

  function render() {
    replace("#audit", table([
      { label: "When", value: (a) => el("span", { title: a.at }, fmt.datetime(a.at)) },
      { label: "Who", value: (a) => (a.username ? el("b", {}, a.username) : el("span", { class: "muted" }, "anonymous")) },
      { label: "Role", value: (a) => (a.role ? el("span", { class: `badge role-${a.role}` }, a.role) : "—") },
      { label: "Action", value: (a) => el("span", { class: "mono" }, a.action) },
      { label: "Subject", value: (a) => a.subject || "—" },
      { label: "Result", value: (a) => badge(a.ok ? "ok" : "denied") },
      { label: "Detail", value: (a) => el("span", { class: "muted mono", style: "font-size:11.5px" }, Object.keys(a.detail).length ? JSON.stringify(a.detail).slice(0, 160) : "") },
      { label: "From", value: (a) => a.client || "—" },
    ], rows, { empty: "No audit entries match." }));
    labos.$("#more").hidden = rows.length === 0 || rows.length % 100 !== 0;
  }
  async function load(more = false) {
    const q = new URLSearchParams({ limit: "100" });
    for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
    if (more && rows.length) q.set("before", String(rows[rows.length - 1].id));
    const page = await api(`/api/audit?${q}`);
    rows = more ? rows.concat(page) : page;
    render();
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); load().catch(failed); });
  labos.$("#more").addEventListener("click", () => load(true).catch(failed));
  document.addEventListener("DOMContentLoaded", () => load().catch(failed));
})();
