/* Experiment page: recipe and the planner's reasons, XRD fit, furnace profile, task timeline, phases. */
"use strict";
(() => {
  const { api, el, replace, fmt, badge, frac, table, failed } = labos;
  const eid = document.body.dataset.experiment;
  const PHASE_COLORS = ["#2563eb", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#9333ea", "#ea580c"];
  let sampleIds = new Set();

  const kpi = (label, value, note, cls) => el("div", { class: `kpi ${cls || ""}` }, el("div", { class: "label" }, label), el("div", { class: "value" }, value), note ? el("div", { class: "note" }, note) : null);

  function stepLine(s) {
    switch (s.kind) {
      case "dose": return [labos.formula(s.precursor, "chip"), ` ${fmt.num(s.mass_mg, 1)} mg`];
      case "mix": return `${s.method.replace("_", " ")} for ${fmt.minutes(s.duration_min)}`;
      case "heat": return el("div", {}, s.segments.map((g, i) => el("div", {}, `${i ? "then " : ""}${g.ramp_c_per_min} °C/min to ${fmt.num(g.target_c)} °C, hold ${fmt.minutes(g.dwell_min)}`)), el("div", { class: "muted" }, `in ${s.atmosphere}, cool at ${s.cool_c_per_min} °C/min`));
      case "grind": return `${fmt.minutes(s.duration_min)}`;
      case "xrd": return `${s.two_theta_start}–${s.two_theta_end}° 2θ, step ${s.step_deg}°, ${s.counting_time_s} s/step`;
      default: return JSON.stringify(s);
    }
  }

  async function loadDetail() {
    const e = await api(`/api/experiments/${encodeURIComponent(eid)}`);
    sampleIds = new Set(e.samples.map((s) => s.id));
    document.title = `${e.target_formula} · ${e.id} · labos`;
    replace("#title", labos.formula(e.target_formula), " ", el("span", { class: "muted", style: "font-weight:400" }, "synthesis"));
    replace("#subtitle", badge(e.status), " ", el("span", { class: "mono muted" }, e.id), e.planner ? ` · planned by ${e.planner}` : "", ` · ${fmt.datetime(e.created_at)}`);
    if (e.campaign_id) { const c = labos.$("#crumb-campaign"); c.href = `/campaigns/${encodeURIComponent(e.campaign_id)}`; c.textContent = "campaign"; }
    const last = e.outcomes.length ? e.outcomes[e.outcomes.length - 1].outcome : null;
    replace("#kpis",
      kpi("Status", e.status.replace(/_/g, " "), fmt.ago(e.updated_at), e.status === "completed" ? "good" : e.status === "waiting_operator" ? "warn" : ""),
      kpi("Target yield", fmt.pct(e.target_fraction, 1), e.success === null ? "not measured yet" : e.success ? "success" : "below threshold", e.success ? "good" : ""),
      kpi("Max temperature", e.max_temperature_c === null ? "—" : `${fmt.num(e.max_temperature_c)} °C`, e.dwell_min === null ? "" : `dwell ${fmt.minutes(e.dwell_min)}`),
      kpi("Fit quality", last && last.rwp !== null ? `${fmt.num(100 * last.rwp, 1)}%` : "—", "Rwp of the phase fit"));
    replace("#explanation", e.explanation || "The planner gave no explanation.");
    const t = e.target || {};
    replace("#facts",
      el("dt", {}, "Precursors"), el("dd", {}, el("span", { class: "chips" }, e.precursors.map((p) => labos.formula(p, "chip")))),
      el("dt", {}, "Target source"), el("dd", {}, `${t.source || "—"}${t.source_id ? ` (${t.source_id})` : ""}`),
      el("dt", {}, "E above hull"), el("dd", {}, t.e_above_hull === null || t.e_above_hull === undefined ? "—" : `${fmt.num(1000 * t.e_above_hull)} meV/atom`),
      el("dt", {}, "Outcomes"), el("dd", {}, e.outcomes.length ? e.outcomes.map((o) => `${o.source} ${fmt.pct(o.target_fraction)}`).join(", ") : "none yet"));
    replace("#recipe", (e.recipe.steps || []).map((s) => el("li", {}, el("span", { class: "kind" }, s.kind), el("span", {}, stepLine(s)))));
    replace("#samples", table([
      { label: "Sample", value: (s) => labos.sampleLink(s.id) },
      { label: "Container", value: (s) => s.container },
      { label: "Position", value: (s) => el("span", { class: "mono" }, s.position) },
      { label: "Moves", value: (s) => fmt.num(s.n_moves), num: true },
    ], e.samples, { empty: "No sample yet." }));
    const measured = e.outcomes.filter((o) => o.source !== "simulator");
    const shown = (measured.length ? measured : e.outcomes).slice(-1)[0];
    renderPhases(shown ? shown.outcome : null);
    if (e.outcomes.some((o) => o.xrd_file)) {
      const dl = el("a", { class: "btn small", href: `/api/experiments/${encodeURIComponent(eid)}/xrd/raw` }, "Raw XRD file");
      replace("#exp-actions", dl);
    }
  }

  function renderPhases(outcome) {
    if (!outcome || !outcome.phases.length) { labos.placeholder("#phase-plot", "No phases identified yet."); replace("#phases"); return; }
    const phases = [...outcome.phases].sort((a, b) => b.weight_fraction - a.weight_fraction);
    labos.$("#phase-hint").textContent = `${outcome.source}${outcome.confidence < 1 ? ` · confidence ${fmt.pct(outcome.confidence)}` : ""}`;
    labos.plot("#phase-plot", [{
      type: "bar", orientation: "h", y: phases.map((p) => p.formula), x: phases.map((p) => 100 * p.weight_fraction),
      error_x: { type: "data", array: phases.map((p) => 100 * (p.uncertainty || 0)), visible: phases.some((p) => p.uncertainty), color: "#475569" },
      marker: { color: phases.map((p) => (p.formula === outcome.target_formula ? "#16a34a" : "#94a3b8")) },
      text: phases.map((p) => `${(100 * p.weight_fraction).toFixed(1)}%`), textposition: "auto", hovertemplate: "%{y}: %{x:.1f} wt%<extra></extra>",
    }], { margin: { l: 90, r: 10, t: 6, b: 40 }, xaxis: { title: { text: "weight fraction (wt%)" }, range: [0, 100] }, yaxis: { autorange: "reversed" }, showlegend: false, height: 80 + 34 * phases.length });
    replace("#phases", table([
      { label: "Phase", value: (p) => labos.formula(p.formula, "strong") },
      { label: "Space group", value: (p) => p.spacegroup || "—" },
      { label: "wt%", value: (p) => `${(100 * p.weight_fraction).toFixed(1)}${p.uncertainty ? ` ± ${(100 * p.uncertainty).toFixed(1)}` : ""}`, num: true },
    ], phases));
  }

  async function loadXrd() {
    let x;
    try { x = await api(`/api/experiments/${encodeURIComponent(eid)}/xrd`); } catch (e) {
      labos.placeholder("#xrd-plot", e.status === 404 && /no XRD measurement yet/.test(e.message) ? "No diffraction pattern yet." : e.message); return;
    }
    labos.$("#xrd-hint").textContent = `${x.source}${x.rwp !== null ? ` · Rwp ${fmt.num(100 * x.rwp, 1)}%` : ""}`;
    const lo = Math.min(...x.observed), hi = Math.max(...x.observed), span = hi - lo || 1;
    const traces = [{ type: "scatter", mode: "markers", name: "observed", x: x.two_theta, y: x.observed, marker: { size: 3, color: "#1e293b" }, hovertemplate: "%{x:.2f}°: %{y:.0f}<extra>observed</extra>" }];
    if (x.calculated) traces.push({ type: "scatter", mode: "lines", name: `fit${x.rwp !== null ? ` (Rwp ${fmt.num(100 * x.rwp, 1)}%)` : ""}`, x: x.two_theta, y: x.calculated, line: { color: "#dc2626", width: 1.4 } });
    if (x.background) traces.push({ type: "scatter", mode: "lines", name: "background", x: x.two_theta, y: x.background, line: { color: "#94a3b8", width: 1, dash: "dot" }, visible: "legendonly" });
    const withTicks = x.phases.filter((p) => p.ticks && p.ticks.length);
    x.phases.forEach((p, i) => {
      const color = PHASE_COLORS[i % PHASE_COLORS.length];
      const label = `${p.formula || p.name} ${p.weight_fraction === null ? "" : fmt.pct(p.weight_fraction, 1)}`;
      if (p.curve) traces.push({ type: "scatter", mode: "lines", name: label, legendgroup: p.name, x: x.two_theta, y: p.curve, line: { color, width: 1 }, visible: "legendonly" });
      if (p.ticks && p.ticks.length) {
        const row = withTicks.indexOf(p);
        const y = lo - (row + 1) * 0.05 * span;
        traces.push({ type: "scatter", mode: "markers", name: `${label} reflections`, legendgroup: p.name, showlegend: !p.curve, x: p.ticks, y: p.ticks.map(() => y), marker: { symbol: "line-ns-open", size: 10, color, line: { width: 1.3, color } }, hovertemplate: `%{x:.2f}°<extra>${p.formula || p.name}</extra>` });
      }
    });
    if (x.difference) {
      const dhi = Math.max(...x.difference);
      const offset = lo - (withTicks.length + 1) * 0.05 * span - dhi;
      traces.push({ type: "scatter", mode: "lines", name: "difference", x: x.two_theta, y: x.difference.map((d) => d + offset), line: { color: "#64748b", width: 1 }, hovertemplate: "%{x:.2f}°<extra>difference</extra>" });
    }
    await labos.plot("#xrd-plot", traces, { xaxis: { title: { text: "2θ (°)" } }, yaxis: { title: { text: "intensity (counts)" } }, height: 430, legend: { y: 1.12 } });
  }

  async function loadFurnace() {
    const f = await api(`/api/experiments/${encodeURIComponent(eid)}/furnace`);
    if (!f.setpoint.t_min.length) { labos.placeholder("#furnace-plot", "This recipe has no heating step."); return; }
    labos.$("#furnace-hint").textContent = [f.furnace, f.atmosphere].filter(Boolean).join(" · ");
    const h = (a) => a.map((t) => t / 60);
    const traces = [{ type: "scatter", mode: "lines", name: "setpoint", x: h(f.setpoint.t_min), y: f.setpoint.temperature_c, line: { color: "#94a3b8", dash: "dash", width: 2 }, hovertemplate: "%{x:.2f} h: %{y:.0f} °C<extra>setpoint</extra>" }];
    if (f.measured) traces.push({ type: "scatter", mode: "lines", name: "measured", x: h(f.measured.t_min), y: f.measured.temperature_c, line: { color: "#ea580c", width: 2 }, hovertemplate: "%{x:.2f} h: %{y:.0f} °C<extra>measured</extra>" });
    await labos.plot("#furnace-plot", traces, { xaxis: { title: { text: "time (h)" } }, yaxis: { title: { text: "temperature (°C)" } } });
  }

  async function loadTimeline() {
    const items = await api(`/api/experiments/${encodeURIComponent(eid)}/timeline`);
    const tasks = items.filter((i) => i.status !== "event");
    const lab = items.some((i) => i.start_min !== null);  // lab clock (virtual in simulation) when the lab recorded it
    labos.$("#timeline-hint").textContent = `${tasks.length} tasks · ${items.length - tasks.length} other events${lab ? " · lab clock" : ""}`;
    const when = (i) => {
      if (i.start_min !== null) return `${fmt.clock(i.start_min)}${i.end_min !== null ? ` → ${fmt.clock(i.end_min)}` : ""}`;
      if (i.start) return `${fmt.time(i.start)}${i.end ? ` → ${fmt.time(i.end)}` : ""}`;
      return "not started";
    };
    replace("#timeline", items.slice(0, 80).map((i) => el("li", { class: `${i.status}${["blocked", "ready"].includes(i.status) ? " pending" : ""}` },
      el("b", {}, i.status === "event" ? i.task : (i.kind || i.task)), " ", i.status === "event" ? null : badge(i.status),
      i.device ? el("span", { class: "muted" }, ` on ${i.device}`) : null, " ", el("span", { class: "when" }, when(i)))));
    const bars = tasks.filter((t) => (lab ? t.start_min !== null : t.start));
    if (!bars.length) { labos.placeholder("#timeline-plot", "No tasks have run yet."); return; }
    const colors = { done: "#16a34a", running: "#2563eb", failed: "#dc2626", waiting_operator: "#d97706", cancelled: "#9ca3af" };
    const label = (t) => t.kind || t.task;
    const names = [...new Set(bars.map(label))];
    const nowMin = Math.max(...items.map((i) => i.end_min ?? i.start_min ?? 0));
    const trace = lab
      ? { base: bars.map((t) => t.start_min / 60), x: bars.map((t) => Math.max(((t.end_min ?? nowMin) - t.start_min) / 60, 0.02)) }
      : { base: bars.map((t) => fmt.date(t.start).toISOString()), x: bars.map((t) => Math.max((t.end ? fmt.date(t.end) : new Date()) - fmt.date(t.start), 1000)) };
    await labos.plot("#timeline-plot", [{
      type: "bar", orientation: "h", y: bars.map(label), ...trace,
      marker: { color: bars.map((t) => colors[t.status] || "#94a3b8") },
      text: bars.map((t) => t.device || ""), textposition: "inside", insidetextanchor: "start",
      hovertemplate: "%{y} %{text}<extra></extra>",
    }], {
      xaxis: lab ? { title: { text: "lab clock (h)" } } : { type: "date" },
      yaxis: { autorange: "reversed", categoryorder: "array", categoryarray: names },
      margin: { l: 80, r: 10, t: 6, b: 40 }, height: Math.max(170, 70 + 28 * names.length), showlegend: false, bargap: 0.35,
    });
  }

  function mine(ev) {
    const d = ev.data || {}, s = ev.subject || "";
    return s === eid || s.startsWith(`${eid}:`) || s.startsWith(`${eid}/`) || sampleIds.has(s) || d.experiment_id === eid || d.experiment === eid;
  }
  const refresh = {
    detail: labos.debounce(() => loadDetail().catch(failed), 400),
    xrd: labos.debounce(() => loadXrd().catch(failed), 400),
    furnace: labos.debounce(() => loadFurnace().catch(failed), 800),
    timeline: labos.debounce(() => loadTimeline().catch(failed), 400),
  };
  labos.on("", (ev) => {
    if (!mine(ev)) return;
    refresh.timeline();
    if (ev.kind.startsWith("furnace")) refresh.furnace();
    if (ev.kind.startsWith("experiment") || ev.kind.startsWith("sample")) refresh.detail();
    if (ev.kind === "experiment.outcome" || ev.kind.startsWith("analysis") || ev.kind.startsWith("xrd")) { refresh.xrd(); refresh.detail(); }
  });
  document.addEventListener("DOMContentLoaded", () => {
    loadDetail().catch(failed);
    loadXrd().catch(failed);
    loadFurnace().catch(failed);
    loadTimeline().catch(failed);
  });
})();
