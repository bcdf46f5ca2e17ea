/* Overview: campaigns with progress, lab state and controls, open interventions, live feed. */
"use strict";
(() => {
  const { api, el, replace, fmt, badge, frac, table, failed, can } = labos;

  function kpi(label, value, note, cls) {
    return el("div", { class: `kpi ${cls || ""}` }, el("div", { class: "label" }, label), el("div", { class: "value" }, value), note ? el("div", { class: "note" }, note) : null);
  }

  async function loadCampaigns() {
    const cs = await api("/api/campaigns");
    labos.$("#campaign-count").textContent = `${cs.length} campaign${cs.length === 1 ? "" : "s"}`;
    replace("#campaigns", table([
      { label: "Campaign", value: (c) => el("a", { href: `/campaigns/${encodeURIComponent(c.id)}` }, c.name) },
      { label: "Status", value: (c) => badge(c.status) },
      { label: "Made", value: (c) => `${c.n_succeeded} / ${c.n_targets}` },
      { label: "Success", value: (c) => frac(c.success_rate, 2) },
      { label: "Experiments", value: (c) => fmt.num(c.n_experiments), num: true },
      { label: "Running", value: (c) => fmt.num(c.n_running), num: true },
      { label: "Exp./success", value: (c) => fmt.num(c.experiments_per_success, 1), num: true },
      { label: "Updated", value: (c) => fmt.ago(c.updated_at) },
    ], cs, { empty: "No campaigns yet. Start one with `labos campaign run` or `labos campaign submit`." }));
    const total = cs.reduce((a, c) => ({ t: a.t + c.n_targets, s: a.s + c.n_succeeded, e: a.e + c.n_experiments, r: a.r + c.n_running }), { t: 0, s: 0, e: 0, r: 0 });
    return total;
  }

  async function loadYield() {
    const page = await api("/api/experiments?limit=1000");
    const rows = page.items.filter((e) => e.target_fraction !== null).reverse();
    if (!rows.length) { labos.placeholder("#yield-plot", "No measured outcomes yet."); return; }
    const byTarget = {};
    rows.forEach((e, i) => { (byTarget[e.target_formula] ||= { x: [], y: [], text: [], ids: [] }); const t = byTarget[e.target_formula]; t.x.push(i + 1); t.y.push(100 * e.target_fraction); t.text.push(`${e.id}<br>${e.precursors.join(" + ")}<br>${fmt.num(e.max_temperature_c)} °C`); });
    const traces = Object.entries(byTarget).map(([name, t]) => ({ type: "scatter", mode: "markers", name, x: t.x, y: t.y, text: t.text, hovertemplate: "%{text}<br>%{y:.1f} wt%<extra>%{fullData.name}</extra>", marker: { size: 9, line: { width: 1, color: "#fff" } } }));
    await labos.plot("#yield-plot", traces, {
      xaxis: { title: { text: "experiment (in order run)" }, tickformat: "d", dtick: rows.length <= 20 ? 1 : null }, yaxis: { title: { text: "target (wt%)" }, range: [-3, 103] },
      shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 50, y1: 50, line: { dash: "dash", color: "#16a34a", width: 1.5 } }],
      showlegend: Object.keys(byTarget).length <= 12,
    });
  }

  async function loadLab(total) {
    const k = [kpi("Targets made", `${total.s}`, `of ${total.t} targets`, total.s ? "good" : ""), kpi("Experiments", fmt.num(total.e), `${total.r} in progress`)];
    let lab = null;
    try { lab = await api("/api/lab"); } catch (e) { if (e.status !== 501) failed(e); }
    if (lab) {
      k.push(kpi("Lab", lab.desired, lab.name || "", lab.desired === "running" ? "good" : "warn"));
      k.push(kpi("Devices in fault", `${lab.devices_fault}`, `${lab.devices} devices`, lab.devices_fault ? "warn" : ""));
      labos.$("#lab-line").textContent = `Lab ${lab.name || ""} is ${lab.desired}; lab clock ${fmt.minutes(lab.clock_s / 60)}.`;
      renderControls(lab);
    } else {
      labos.$("#lab-line").textContent = "The lab OS is not connected to this database yet.";
    }
    replace("#kpis", k);
  }

  function renderControls(lab) {
    const box = labos.$("#lab-controls");
    if (!box) return;
    const act = async (action) => {
      if (action === "stop" && !confirm("Stop the lab? Running tasks finish their current step; nothing new starts.")) return;
      try { await api(`/api/lab/${action}`, { method: "POST", body: {} }); labos.toast(`Lab ${action} requested`, "ok"); refresh(); } catch (e) { failed(e); }
    };
    const allowed = can("operator");
    const title = allowed ? null : "needs the operator role";
    replace(box,
      el("button", { class: "btn", type: "button", disabled: !allowed || lab.desired === "paused", title, onclick: () => act("pause"), id: "btn-pause" }, "Pause"),
      el("button", { class: "btn", type: "button", disabled: !allowed || lab.desired === "running", title, onclick: () => act("resume"), id: "btn-resume" }, "Resume"),
      el("button", { class: "btn danger", type: "button", disabled: !allowed || lab.desired === "stopped", title, onclick: () => act("stop"), id: "btn-stop" }, "Stop"));
  }

  async function loadInterventions() {
    try {
      const ivs = await api("/api/interventions?status=open");
      replace("#open-ivs", ivs.length ? ivs.slice(0, 5).map((iv) => el("div", { class: "notice warn", style: "margin-bottom:8px" }, el("b", {}, iv.kind.replace(/_/g, " ")), " — ", iv.message, " ", el("a", { href: "/interventions" }, "answer →"))) : el("div", { class: "muted" }, "Nothing is waiting for an operator."));
    } catch (e) {
      replace("#open-ivs", el("div", { class: "muted" }, e.status === 501 ? "Interventions appear here once the lab OS runs." : e.message));
    }
  }

  async function refresh() {
    try {
      const total = await loadCampaigns();
      await Promise.all([loadLab(total), loadYield(), loadInterventions()]);
    } catch (e) { failed(e); }
  }
  const soon = labos.debounce(refresh, 700);
  ["experiment.", "campaign.", "lab.", "intervention.", "device."].forEach((p) => labos.on(p, soon));
  document.addEventListener("DOMContentLoaded", () => { refresh(); feed.mount("#feed"); });
})();
