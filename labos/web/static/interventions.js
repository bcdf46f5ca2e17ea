/* Interventions: answer open requests (operator), see who answered what. Live on intervention events. */
"use strict";
(() => {
  const { api, el, replace, fmt, badge, table, failed, can } = labos;

  function card(iv) {
    const note = el("input", { type: "text", placeholder: "note for the log (optional)", maxlength: "500", "aria-label": "note" });
    const buttons = iv.options.map((opt, i) => el("button", {
      class: `btn ${i === 0 ? "primary" : ""}`, type: "button", disabled: !can("operator"),
      title: can("operator") ? null : "answering needs the operator role", dataset: { option: opt },
      onclick: async (e) => {
        const btns = e.target.closest(".answer").querySelectorAll("button");
        btns.forEach((b) => { b.disabled = true; });
        try {
          await api(`/api/interventions/${encodeURIComponent(iv.id)}/answer`, { method: "POST", body: { answer: opt, note: note.value || null } });
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
