/* Users (admin): list, add, change role, disable/enable. */
"use strict";
(() => {
  const { api, el, replace, fmt, badge, table, failed } = labos;
  const me = document.body.dataset.user;

  async function patch(name, body, what) {
    try { await api(`/api/users/${encodeURIComponent(name)}`, { method: "PATCH", body }); labos.toast(`${name}: ${what}`, "ok"); load(); } catch (e) { failed(e); load(); }
  }
  async function load() {
    const users = await api("/api/users");
    replace("#users", table([
      { label: "User", value: (u) => el("b", {}, u.username, u.username === me ? el("span", { class: "muted", style: "font-weight:400" }, " (you)") : null) },
      { label: "Role", value: (u) => { const s = el("select", { "aria-label": `role of ${u.username}`, onchange: (e) => patch(u.username, { role: e.target.value }, `role ${e.target.value}`) }, ["viewer", "operator", "admin"].map((r) => el("option", { selected: r === u.role }, r))); return s; } },
      { label: "State", value: (u) => badge(u.active ? "active" : "disabled") },
      { label: "Last sign-in", value: (u) => fmt.ago(u.last_login_at) },
      { label: "Created", value: (u) => fmt.datetime(u.created_at) },
      { label: "", value: (u) => el("button", { class: `btn small ${u.active ? "danger" : ""}`, type: "button", onclick: () => patch(u.username, { active: !u.active }, u.active ? "disabled" : "enabled") }, u.active ? "Disable" : "Enable") },
    ], users));
  }
  labos.$("#add-user").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    try {
      await api("/api/users", { method: "POST", body: { username: f.get("username"), password: f.get("password"), role: f.get("role") } });
      labos.toast(`Added ${f.get("username")}`, "ok");
      e.target.reset();
      load();
    } catch (err) { failed(err); }
  });
  document.addEventListener("DOMContentLoaded", () => load().catch(failed));
})();
