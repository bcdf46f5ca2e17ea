/* Experiments list with filters; live: refreshes when experiments change. */
"use strict";
(() => {
  const { api, el, replace, fmt, badge, frac, table, failed } = labos;
  const form = labos.$("#filters");

  async function load() {
    const q = new URLSearchParams({ limit: "500" });
    for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
    const page = await api(`/api/experiments?${q}`);
    labos.$("#count").textContent = `${page.items.length} of ${page.total}`;
    replace("#experiments", table([
      { label: "Experiment", value: (e) => labos.expLink(e.id) },
      { label: "Target", value: (e) => labos.formula(e.target_formula, "strong") },
      { label: "Status", value: (e) => badge(e.status) },
      { label: "Precursors", value: (e) => el("span", { class: "chips" }, e.precursors.map((p) => labos.formula(p, "chip"))) },
      { label: "T max", value: (e) => (e.max_temperature_c === null ? "—" : `${fmt.num(e.max_temperature_c)} °C`), num: true },
      { label: "Dwell", value: (e) => fmt.minutes(e.dwell_min), num: true },
      { label: "Planner", value: (e) => e.planner || "—" },
      { label: "Target yield", value: (e) => frac(e.target_fraction) },
      { label: "Created", value: (e) => fmt.ago(e.created_at) },
    ], page.items, { empty: "No experiments match." }));
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); load().catch(failed); });
  labos.on("experiment.", labos.debounce(() => load().catch(failed), 600));
  document.addEventListener("DOMContentLoaded", () => load().catch(failed));
})();
