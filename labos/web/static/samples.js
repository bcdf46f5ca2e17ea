/* Samples: where everything is, with a live count per location. */
"use strict";
(() => {
  const { api, el, replace, fmt, table, failed } = labos;
  const form = labos.$("#filters");

  async function load() {
    const q = new URLSearchParams({ limit: "1000" });
    for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
    const page = await api(`/api/samples?${q}`);
    labos.$("#count").textContent = `${page.items.length} of ${page.total}`;
    replace("#samples", table([
      { label: "Sample", value: (s) => labos.sampleLink(s.id) },
      { label: "Position", value: (s) => el("span", { class: "mono" }, s.position) },
      { label: "Container", value: (s) => s.container },
      { label: "Experiment", value: (s) => (s.experiment_id ? labos.expLink(s.experiment_id) : "—") },
      { label: "Target", value: (s) => (s.target_formula ? labos.formula(s.target_formula) : "—") },
      { label: "Moves", value: (s) => fmt.num(s.n_moves), num: true },
      { label: "Last move", value: (s) => fmt.ago(s.last_moved_at) },
    ], page.items, { empty: "No samples match." }));
    const groups = {};
    for (const s of page.items) { const g = s.position.split("/")[0]; groups[g] = (groups[g] || 0) + 1; }
    const names = Object.keys(groups).sort((a, b) => groups[b] - groups[a]);
    if (!names.length) { labos.placeholder("#where-plot", "No samples."); return; }
    await labos.plot("#where-plot", [{ type: "bar", orientation: "h", y: names, x: names.map((n) => groups[n]), marker: { color: "#3b82f6" }, hovertemplate: "%{y}: %{x} samples<extra></extra>" }],
      { margin: { l: 120, r: 10, t: 6, b: 36 }, yaxis: { autorange: "reversed" }, xaxis: { title: { text: "samples" }, tickformat: "d", dtick: Math.max(...Object.values(groups)) <= 10 ? 1 : null }, height: 80 + 26 * names.length });
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); load().catch(failed); });
  labos.on("sample.", labos.debounce(() => load().catch(failed), 600));
  document.addEventListener("DOMContentLoaded", () => load().catch(failed));
})();
