/* Campaign page: progress, yield per experiment, targets, experiments; refreshed live from events. */
"use strict";
(() => {
  const { api, el, replace, fmt, badge, frac, table, failed } = labos;
  const cid = document.body.dataset.campaign;
  let expIds = new Set();
  let previous = new Map();

  const kpi = (label, value, note, cls) => el("div", { class: `kpi ${cls || ""}` }, el("div", { class: "label" }, label), el("div", { class: "value" }, value), note ? el("div", { class: "note" }, note) : null);

  function related(ev) {
    const d = ev.data || {};
    if (ev.kind.startsWith("campaign.")) return ev.subject === cid;
    if (["intervention.", "lab.", "device."].some((p) => ev.kind.startsWith(p))) return true;
    if (d.campaign_id === cid || expIds.has(d.experiment_id) || expIds.has(d.experiment)) return true;
    const s = ev.subject || "";
    for (const id of expIds) if (s === id || s.startsWith(`${id}:`) || s.startsWith(`${id}/`)) return true;
    return false;
  }

  async function load() {
    const c = await api(`/api/campaigns/${encodeURIComponent(cid)}`);
    document.title = `${c.name} · labos`;
    labos.$("#title").textContent = c.name;
    replace("#subtitle", badge(c.status), " ", el("span", { class: "mono muted" }, c.id), ` · started ${fmt.datetime(c.created_at)} · updated ${fmt.ago(c.updated_at)}`);
    replace("#kpis",
      kpi("Targets made", `${c.n_succeeded} / ${c.n_targets}`, c.success_rate === null ? "" : `${fmt.pct(c.success_rate)} success`, c.n_succeeded ? "good" : ""),
      kpi("Experiments", fmt.num(c.n_experiments), `${c.n_completed} completed · ${c.n_failed} failed`),
      kpi("In progress", fmt.num(c.n_running), "queued, running or waiting"),
      kpi("Experiments / success", fmt.num(c.experiments_per_success, 1), "lower is better"));
    expIds = new Set(c.experiments.map((e) => e.id));

    labos.$("#target-hint").textContent = `${c.targets.length} targets`;
    replace("#targets", table([
      { label: "Target", value: (t) => labos.formula(t.formula, "strong") },
      { label: "Status", value: (t) => badge(t.succeeded ? "succeeded" : t.status) },
      { label: "Experiments", value: (t) => fmt.num(t.n_experiments), num: true },
      { label: "Best yield", value: (t) => frac(t.best_fraction) },
      { label: "Best experiment", value: (t) => (t.best_experiment_id ? labos.expLink(t.best_experiment_id) : "—") },
      { label: "E above hull", value: (t) => (t.e_above_hull === null ? "—" : `${fmt.num(1000 * t.e_above_hull)} meV`), num: true },
    ], c.targets, { empty: "No targets." }));

    labos.$("#exp-hint").textContent = `${c.experiments.length} experiments, newest first`;
    const tableNode = table([
      { label: "Experiment", value: (e) => labos.expLink(e.id) },
      { label: "Target", value: (e) => labos.formula(e.target_formula) },
      { label: "Status", value: (e) => badge(e.status) },
      { label: "Precursors", value: (e) => el("span", { class: "chips" }, e.precursors.map((p) => labos.formula(p, "chip"))) },
      { label: "T max", value: (e) => (e.max_temperature_c === null ? "—" : `${fmt.num(e.max_temperature_c)} °C`), num: true },
      { label: "Dwell", value: (e) => fmt.minutes(e.dwell_min), num: true },
      { label: "Target yield", value: (e) => frac(e.target_fraction) },
    ], c.experiments, { empty: "No experiments yet.", key: (e) => e.id });
    const now = new Map(c.experiments.map((e) => [e.id, `${e.status}|${e.target_fraction}`]));
    if (previous.size) tableNode.querySelectorAll("tbody tr").forEach((tr) => { if (previous.get(tr.dataset.key) !== now.get(tr.dataset.key)) tr.classList.add("flash"); });
    previous = now;
    replace("#experiments", tableNode);

    const rows = c.experiments.filter((e) => e.target_fraction !== null).reverse();
    if (!rows.length) { labos.placeholder("#yield-plot", "No measured outcomes yet."); return; }
    const byTarget = {};
    rows.forEach((e, i) => { const t = (byTarget[e.target_formula] ||= { x: [], y: [], text: [] }); t.x.push(i + 1); t.y.push(100 * e.target_fraction); t.text.push(`${e.id}<br>${e.precursors.join(" + ")}<br>${fmt.num(e.max_temperature_c)} °C`); });
    const threshold = 100 * (c.config?.success_threshold ?? 0.5);
    await labos.plot("#yield-plot", Object.entries(byTarget).map(([name, t]) => ({ type: "scatter", mode: "lines+markers", name, x: t.x, y: t.y, text: t.text, line: { width: 1, dash: "dot" }, marker: { size: 9, line: { width: 1, color: "#fff" } }, hovertemplate: "%{text}<br>%{y:.1f} wt%<extra>%{fullData.name}</extra>" })), {
      xaxis: { title: { text: "experiment (in order run)" }, tickformat: "d", dtick: rows.length <= 20 ? 1 : null }, yaxis: { title: { text: "target (wt%)" }, range: [-3, 103] },
      shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: threshold, y1: threshold, line: { dash: "dash", color: "#16a34a", width: 1.5 } }],
    });
  }

  const route = (precursors) => el("span", { class: "chips" }, precursors.map((p) => labos.formula(p, "chip")));
  const fractions = (obj) => Object.entries(obj || {}).sort((a, b) => b[1] - a[1]).map(([f, w]) => [labos.formula(f), ` ${fmt.pct(w)}`]).flatMap((x, i) => (i ? [", ", x] : [x]));

  /* the campaign runner's report (labos.campaign): per target the route that worked and why, and
     the routes that failed with the intermediates that blocked them */
  async function loadReport() {
    let rep;
    try { rep = await api(`/api/campaigns/${encodeURIComponent(cid)}/report`); } catch (e) {
      if (e.status === 404 || e.status === 501) { labos.$("#report-card").hidden = true; return; }
      throw e;
    }
    const S = rep.summary;
    labos.$("#report-card").hidden = false;
    labos.$("#report-hint").textContent = `${rep.planner} planner · ${fmt.num(S.virtual_days, 2)} lab days · furnaces ${fmt.pct(S.furnace_utilisation)} utilised · ${fmt.num(S.wall_s, 0)} s wall`;
    replace("#report", rep.targets.map((t) => {
      const parts = [el("div", { class: "head" }, labos.formula(t.formula, "strong"), " ", badge(t.status),
        el("span", { class: "muted" }, ` ${t.experiments_used} experiment${t.experiments_used === 1 ? "" : "s"}${t.best_fraction === null ? "" : ` · best ${fmt.pct(t.best_fraction)}`}`))];
      if (t.route) {
        const r = t.route;
        parts.push(el("div", { class: "route ok" }, el("b", {}, "Worked: "), route(r.precursors), ` at ${fmt.num(r.temperature_c)} °C for ${fmt.minutes(r.dwell_min)}${r.regrind_reheat ? ", reground and reheated" : ""} → ${fmt.pct(r.target_fraction)} `, labos.expLink(r.experiment)));
        if (r.reaction) parts.push(el("div", { class: "muted mono", style: "margin:2px 0 4px" }, r.reaction));
        if (r.why) parts.push(el("div", { class: "explain" }, r.why));
      } else if (t.reason) {
        parts.push(el("div", { class: "muted" }, t.reason));
      }
      for (const f of t.failed_routes) {
        parts.push(el("div", { class: "route bad" }, el("b", {}, "Failed: "), route(f.precursors),
          ` at ${f.temperatures_c.map((c) => fmt.num(c)).join(", ")} °C, best ${fmt.pct(f.best_fraction)}`,
          Object.keys(f.blocking).length ? [" — blocked by ", ...fractions(f.blocking)] : null,
          Object.keys(f.unreacted).length ? [el("span", { class: "muted" }, " · unreacted "), ...fractions(f.unreacted)] : null));
      }
      return el("div", { class: "target-report" }, parts);
    }));
  }

  const soon = labos.debounce(() => load().catch(failed), 500);
  const soonReport = labos.debounce(() => loadReport().catch(failed), 2000);
  labos.on("experiment.outcome", soonReport);
  labos.on("", (ev) => { if (related(ev) && /^(experiment|task|sample|campaign|furnace)/.test(ev.kind)) soon(); });
  document.addEventListener("DOMContentLoaded", async () => {
    try { await load(); } catch (e) { failed(e); }
    loadReport().catch(failed);
    feed.mount("#feed", { filter: related, limit: 80 });
  });
})();
