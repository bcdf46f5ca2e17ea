/* Precursor inventory: stock per lot, low stock flagged; live on inventory events. */
"use strict";
(() => {
  const { api, el, replace, fmt, badge, table, failed } = labos;
  function level(l) {
    const v = l.initial_mg ? Math.max(0, l.stock_mg) / l.initial_mg : 0;
    return el("span", { class: "frac" }, el("span", { class: `bar${l.low ? "" : " hit"}` }, el("i", { style: `width:${Math.min(1, v) * 100}%` })), el("span", {}, fmt.pct(v)));
  }
  async function load() {
    try {
      const lots = await api("/api/inventory");
      replace("#inventory", table([
        { label: "Precursor", value: (l) => el("b", { class: "mono" }, l.formula) },
        { label: "Lot", value: (l) => l.lot },
        { label: "Stock", value: (l) => `${fmt.num(l.stock_mg / 1000, 2)} g`, num: true },
        { label: "Level", value: level },
        { label: "Refill below", value: (l) => `${fmt.num(l.low_mg / 1000, 2)} g`, num: true },
        { label: "State", value: (l) => badge(l.stock_mg <= 0 ? "empty" : l.low ? "low" : "ok") },
        { label: "Location", value: (l) => l.location || "—" },
      ], lots, { empty: "No precursors in stock." }));
    } catch (e) {
      if (e.status === 501) replace("#inventory", el("div", { class: "empty" }, e.message)); else throw e;
    }
  }
  labos.on("inventory.", labos.debounce(() => load().catch(failed), 500));
  document.addEventListener("DOMContentLoaded", () => load().catch(failed));
})();
