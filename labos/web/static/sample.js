/* One sample: its moves and where its material came from. */
"use strict";
(() => {
  const { api, el, replace, fmt, badge, frac, table, failed } = labos;
  const sid = document.body.dataset.sample;

  async function load() {
    const s = await api(`/api/samples/${encodeURIComponent(sid)}`);
    replace("#title", el("span", { class: "mono" }, s.id));
    replace("#subtitle", `${s.container} at `, el("b", { class: "mono" }, s.position), s.target_formula ? [" · target ", labos.formula(s.target_formula)] : "", ` · created ${fmt.datetime(s.created_at)}`);
    replace("#history", [...s.history].reverse().map((h, i) => el("li", { class: i === 0 ? "running" : "done" }, el("b", { class: "mono" }, h.position), i === 0 ? [" ", badge("now")] : null, el("div", { class: "muted" }, h.cause, " · ", fmt.datetime(h.at)))));
    const L = s.lineage;
    const parts = [];
    if (L.experiment) {
      parts.push(el("dl", { class: "kv" },
        el("dt", {}, "Experiment"), el("dd", {}, labos.expLink(L.experiment.id), " ", badge(L.experiment.status)),
        el("dt", {}, "Target"), el("dd", {}, labos.formula(L.experiment.target_formula, "strong")),
        el("dt", {}, "Target yield"), el("dd", {}, frac(L.experiment.target_fraction)),
        el("dt", {}, "Related samples"), el("dd", {}, L.related_samples.length ? L.related_samples.map((r) => [labos.sampleLink(r), " "]) : "none")));
      if (L.explanation) parts.push(el("h3", {}, "Planner's reason"), el("div", { class: "explain" }, L.explanation));
      parts.push(el("h3", {}, "Precursors"), table([
        { label: "Precursor", value: (d) => labos.formula(d.precursor, "chip") },
        { label: "Planned", value: (d) => `${fmt.num(d.planned_mg, 1)} mg`, num: true },
        { label: "Weighed", value: (d) => (d.weighed_mg === null || d.weighed_mg === undefined ? "—" : `${fmt.num(d.weighed_mg, 2)} mg`), num: true },
        { label: "Lots", value: (d) => (d.lots ? d.lots.map((l) => `${l.lot} (${fmt.num(l.mg, 1)} mg)`).join(", ") : "—") },
      ], L.doses, { empty: "No doses." }));
      parts.push(el("h3", {}, "Heat"), L.heat.length ? el("ul", {}, L.heat.map((h) => el("li", {}, h.segments.map((g) => `${g.ramp_c_per_min} °C/min → ${g.target_c} °C for ${fmt.minutes(g.dwell_min)}`).join(", then "), ` in ${h.atmosphere}`, h.run ? el("span", { class: "muted" }, ` · furnace run ${h.run}`) : null))) : el("div", { class: "muted" }, "not heated"));
      parts.push(el("h3", {}, "Diffraction and analysis"), L.outcomes.length ? table([
        { label: "Source", value: (o) => o.source },
        { label: "Target", value: (o) => frac(o.target_fraction) },
        { label: "Phases", value: (o) => o.outcome.phases.map((p) => `${p.formula} ${fmt.pct(p.weight_fraction)}`).join(", ") },
        { label: "File", value: (o) => (o.xrd_file ? el("span", { class: "mono", title: o.xrd_file }, o.xrd_file.split("/").pop()) : "—") },
      ], L.outcomes) : el("div", { class: "muted" }, "not measured yet"));
      if (L.provenance.length) parts.push(el("h3", {}, "Lab records"), el("ul", {}, L.provenance.map((p) => el("li", {}, el("b", {}, p.kind), " ", el("span", { class: "muted" }, JSON.stringify(p.data).slice(0, 160))))));
      if (L.parents.length || L.children.length) parts.push(el("h3", {}, "Derived"), el("div", {}, L.parents.length ? ["from ", L.parents.map((x) => [labos.sampleLink(x), " "])] : null, L.children.length ? ["into ", L.children.map((x) => [labos.sampleLink(x), " "])] : null));
    } else parts.push(el("div", { class: "muted" }, "This sample belongs to no experiment."));
    replace("#lineage", parts);
  }
  labos.on("sample.", (ev) => { if (ev.subject === sid) load().catch(failed); });
  document.addEventListener("DOMContentLoaded", () => load().catch(failed));
})();
