/* Devices: state, faults, current booking, utilisation; sample positions. Live on device/task events. */
"use strict";
(() => {
  const { api, el, replace, fmt, badge, table, failed, can } = labos;
  const kpi = (label, value, note, cls) => el("div", { class: `kpi ${cls || ""}` }, el("div", { class: "label" }, label), el("div", { class: "value" }, value), note ? el("div", { class: "note" }, note) : null);

  function util(v) {
    if (v === null || v === undefined) return el("span", { class: "muted" }, "—");
    return el("span", { class: "frac" }, el("span", { class: "bar hit" }, el("i", { style: `width:${Math.min(1, v) * 100}%` })), el("span", {}, fmt.pct(v)));
  }

  /* a task id is "<experiment>:<node>": link the experiment */
  function doing(holder) {
    if (!holder) return el("span", { class: "muted" }, "idle");
    const m = /^(exp-[^:]+):(.+)$/.exec(holder);
    return m ? el("span", {}, el("a", { class: "mono", href: `/experiments/${encodeURIComponent(m[1])}` }, m[1]), el("span", { class: "muted" }, ` ${m[2]}`)) : el("span", { class: "mono" }, holder);
  }

  async function controls() {
    let lab;
    try { lab = await api("/api/lab"); } catch (e) { if (e.status === 501) return null; throw e; }
    const act = async (action) => {
      if (action === "stop" && !confirm("Stop the lab?")) return;
      try { await api(`/api/lab/${action}`, { method: "POST", body: {} }); labos.toast(`Lab ${action} requested`, "ok"); load(); } catch (e) { failed(e); }
    };
    const ok = can("operator");
    replace("#lab-controls", badge(lab.desired),
      el("button", { class: "btn", type: "button", disabled: !ok || lab.desired === "paused", onclick: () => act("pause") }, "Pause"),
      el("button", { class: "btn", type: "button", disabled: !ok || lab.desired === "running", onclick: () => act("resume") }, "Resume"),
      el("button", { class: "btn danger", type: "button", disabled: !ok || lab.desired === "stopped", onclick: () => act("stop") }, "Stop"));
    return lab;
  }

  async function load() {
    let devices;
    try { devices = await api("/api/devices"); } catch (e) {
      if (e.status === 501) { replace("#devices", el("div", { class: "empty" }, e.message)); return; }
      throw e;
    }
    const lab = await controls();
    const faults = devices.filter((d) => d.state !== "ok");
    const busy = devices.filter((d) => d.holder);
    replace("#kpis",
      kpi("Devices", fmt.num(devices.length), lab ? `lab ${lab.desired}` : ""),
      kpi("Busy now", fmt.num(busy.length), "booked by a task"),
      kpi("Faults", fmt.num(faults.length), faults.map((d) => d.name).join(", ") || "none", faults.length ? "warn" : "good"),
      kpi("Lab clock", lab ? fmt.minutes(lab.clock_s / 60) : "—", "virtual or wall time"));
    replace("#devices", table([
      { label: "Device", value: (d) => el("b", {}, d.name) },
      { label: "Role", value: (d) => d.role },
      { label: "State", value: (d) => badge(d.state) },
      { label: "Doing", value: (d) => doing(d.holder) },
      { label: "Slots", value: (d) => (d.slots ? `${d.occupied} / ${d.slots}` : "—"), num: true },
      { label: "Utilisation", value: (d) => util(d.utilisation) },
      { label: "Jobs", value: (d) => fmt.num(d.grants), num: true },
      { label: "Detail", value: (d) => (d.fault ? el("span", { class: "bad" }, d.fault) : el("span", { class: "muted" }, d.note || "")) },
    ], devices, { empty: "No devices configured." }));
    const withUtil = devices.filter((d) => d.utilisation !== null);
    if (withUtil.length) await labos.plot("#util-plot", [{ type: "bar", orientation: "h", y: withUtil.map((d) => d.name), x: withUtil.map((d) => 100 * d.utilisation), marker: { color: withUtil.map((d) => (d.role === "furnace" ? "#ea580c" : "#3b82f6")) }, hovertemplate: "%{y}: %{x:.1f}%<extra></extra>" }],
      { margin: { l: 100, r: 10, t: 6, b: 36 }, xaxis: { title: { text: "busy (% of lab time)" }, range: [0, 100] }, yaxis: { autorange: "reversed" }, height: 80 + 22 * withUtil.length });
    else labos.placeholder("#util-plot", "No utilisation recorded yet.");
    const slots = await api("/api/positions");
    replace("#slots", table([
      { label: "Position", value: (s) => el("span", { class: "mono" }, s.name) },
      { label: "Group", value: (s) => s.group },
      { label: "Sample", value: (s) => (s.occupant ? labos.sampleLink(s.occupant) : el("span", { class: "muted" }, "empty")) },
    ], slots.filter((s) => s.occupant), { empty: "All positions are empty." }));
  }
  const soon = labos.debounce(() => load().catch(failed), 600);
  ["device.", "task.", "lab.", "furnace_run.", "sample."].forEach((p) => labos.on(p, soon));
  document.addEventListener("DOMContentLoaded", () => load().catch(failed));
})();
