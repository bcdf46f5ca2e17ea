/* The live activity feed: recent events first, new ones slide in as they arrive. */
"use strict";

const feed = (() => {
  const { el, fmt } = labos;
  const KEYS = ["position", "destination", "task", "node", "device", "furnace", "status", "answer", "message", "target_fraction", "error", "reason", "cause", "by", "user"];

  function describe(ev) {
    const d = ev.data || {};
    const parts = [];
    for (const k of KEYS) {
      if (d[k] === undefined || d[k] === null || d[k] === "") continue;
      let v = d[k];
      if (k === "target_fraction" && typeof v === "number") v = fmt.pct(v);
      if (typeof v === "object") v = JSON.stringify(v);
      parts.push(`${k.replace(/_/g, " ")}: ${String(v).slice(0, 120)}`);
      if (parts.length >= 3) break;
    }
    return parts.join(" · ");
  }
  function subjectNode(s) {
    if (!s) return null;
    if (s.startsWith("exp-")) return labos.expLink(s);
    if (s.startsWith("smp-")) return labos.sampleLink(s);
    return el("span", { class: "mono" }, s);
  }
  function item(ev, fresh) {
    return el("li", { class: fresh ? "new" : null, dataset: { id: ev.id, kind: ev.kind } },
      el("span", { class: "t", title: fmt.datetime(ev.at) }, fmt.time(ev.at)),
      el("span", {}, el("span", { class: "k" }, ev.kind), " ", subjectNode(ev.subject), el("div", { class: "d" }, describe(ev))));
  }
  /* filter(ev) -> bool decides which events belong on this page */
  /* high-rate measurements belong in plots, not in the activity feed */
  const NOISE = ["furnace.reading", "furnace.temperature"];
  async function mount(list, { filter: wanted = () => true, limit = 60, query = "" } = {}) {
    const filter = (ev) => !NOISE.includes(ev.kind) && wanted(ev);
    const node = typeof list === "string" ? labos.$(list) : list;
    try {
      const events = await labos.api(`/api/events?limit=${3 * limit}${query}`);
      const mine = events.filter(filter).slice(0, limit);
      labos.replace(node, mine.length ? mine.map((e) => item(e, false)) : el("li", { class: "empty" }, "No events yet."));
    } catch (e) { labos.failed(e); }
    document.addEventListener("labos:event", (e) => {
      const ev = e.detail;
      if (!filter(ev)) return;
      node.querySelector(".empty")?.remove();
      node.prepend(item(ev, true));
      while (node.children.length > limit) node.lastChild.remove();
    });
  }
  return { mount, describe };
})();
