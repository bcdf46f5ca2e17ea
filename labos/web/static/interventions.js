/* Interventions: answer open requests (operator), see who answered what. Live on intervention events. */
"use strict";
(() => {
  const { api, el, replace, fmt, badge, table, failed, can } = labos;

  /* facts some answers need (the lab OS checks them): [name, input type, label, required] */
  const FIELDS = {
    refill_precursor: { refilled: [["lot", "text", "lot number", true], ["mg", "number", "mg added", true]] },
    confirm_step: { dosed: [["dosed_mg", "number", "weighed mg (if known)", false]] },
  };

  function card(iv) {
    const note = el("input", { type: "text", placeholder: "note for the log (optional)", maxlength: "500", "aria-label": "note" });
    const specs = FIELDS[iv.kind] || {};
    const inputs = {};
    for (const fields of Object.values(specs)) {
      for (const [name, type, label] of fields) {
        inputs[name] ||= el("input", { type, name, placeholder: label, "aria-label": label, step: type === "number" ? "any" : null, min: type === "number" ? "0" : null, style: "max-width:180px" });
      }
    }
    function values(opt) {
      const out = {};
      for (const [name, type, label, required] of specs[opt] || []) {
        const raw = inputs[name].value.trim();
        if (!raw) { if (required) throw new Error(`“${opt}” needs the ${label}`); continue; }
        out[name] = type === "number" ? Number(raw) : raw;
      }
      return out;
    }
    const buttons = iv.options.map((opt, i) => el("button", {
      class: `btn ${i === 0 ? "primary" : ""}`, type: "button", disabled: !can("operator"),
      title: can("operator") ? null : "answering needs the operator role", dataset: { option: opt },
      onclick: async (e) => {
        const btns = e.target.closest(".answer").querySelectorAll("button");
        let vals;
        try { vals = values(opt); } catch (err) { failed(err); return; }
        btns.forEach((b) => { b.disabled = true; });
        try {
          await api(`/api/interventions/${encodeURIComponent(iv.id)}/answer`, { method: "POST", body: { answer: opt, values: vals, note: note.value || null } });
          labos.toast(`Answered “${opt}”`, "ok");
          load();
        } catch (err) { failed(err); btns.forEach((b) => { b.disabled = !can("operator"); }); }
      },
    }, opt.replace(/_/g, " ")));
    return el("div", { class: `iv level-${iv.level}`, dataset: { id: iv.id } },
      el("div", { class: "head" }, el("span", {}, el("span", { class: "kind" }, iv.kind.replace(/_/g, " ")), " ", badge(iv.level ? "escalated" : "open"), iv.level ? el("span", { class: "muted" }, ` level ${iv.level}`) : null),
        el("span", { class: "muted" }, iv.subject ? `${iv.subject} · ` : "", fmt.ago(iv.created_at))),
      el("div", { class: "msg" }, iv.message),
      iv.task_id ? el("div", { class: "muted", style: "margin:-6px 0 10px;font-size:12.5px" }, "task ", el("span", { class: "mono" }, iv.task_id)) : null,
      Object.keys(inputs).length ? el("div", { class: "answer", style: "margin-bottom:8px" }, Object.values(inputs)) : null,
      el("div", { class: "answer" }, buttons, note));
  }

  async function load() {
    let open, done;
    try {
      [open, done] = await Promise.all([api("/api/interventions?status=open"), api("/api/interventions?status=answered&limit=200")]);
    } catch (e) {
      if (e.status === 501) { replace("#open", el("div", { class: "card empty" }, e.message)); replace("#answered"); return; }
      throw e;
    }
    replace("#open", open.length ? open.map(card) : el("div", { class: "card empty" }, "Nothing is waiting for an operator. New requests appear here as they are raised."));
    replace("#answered", table([
      { label: "Request", value: (iv) => el("span", {}, el("b", {}, iv.kind.replace(/_/g, " ")), el("div", { class: "muted", style: "font-size:12px" }, iv.message)) },
      { label: "Answer", value: (iv) => el("span", { class: "chip" }, iv.answer) },
      { label: "By", value: (iv) => iv.answered_by || "—" },
      { label: "When", value: (iv) => fmt.ago(iv.answered_at) },
    ], done, { empty: "No answered interventions." }));
  }
  labos.on("intervention.", labos.debounce(() => load().catch(failed), 300));
  document.addEventListener("DOMContentLoaded", () => load().catch(failed));
})();
