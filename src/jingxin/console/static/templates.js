/* Templates: the list with submit / withdraw / approve / reject as the role allows, and a
   new draft with the live parts counter (the API decides; the buttons only offer). */
"use strict";
(function () {
  const { t, h, $, fill, failed, notice, table, items, api, button, can } = JX;
  const status = $('[data-role="status"]');
  const list = $('[data-role="list"]');

  function actions(row) {
    const act = (label, path, body, attrs) => button(label, async () => {
      await api("POST", "/templates/" + row.id + "/" + path, body);
      await load();
    }, status, attrs);
    const shown = [];
    if (can("templates.write") && row.status === "draft") shown.push(act(t("tpl.submit"), "submit", null, { "data-act": "submit" }));
    if (can("templates.write") && row.status === "submitted") shown.push(act(t("tpl.withdraw"), "withdraw", null, { "data-act": "withdraw" }));
    if (can("templates.review") && row.status === "submitted") {
      shown.push(act(t("tpl.approve"), "approve", {}, { class: "primary", "data-act": "approve" }));
      shown.push(button(t("tpl.reject"), async () => {
        const reason = JX.ask(t("tpl.reason"));
        await api("POST", "/templates/" + row.id + "/reject", { reason });
        await load();
      }, status, { class: "danger", "data-act": "reject" }));
    }
    return h("span", null, shown);
  }

  async function load() {
    try {
      const answer = await api("GET", "/templates?limit=500");
      fill(list, table([
        { label: t("common.id"), key: "id" },
        { label: t("tpl.code"), key: "code" },
        { label: t("tpl.version"), key: "version", numeric: true },
        { label: t("tpl.category"), key: "category" },
        { label: t("common.status"), value: (r) => h("span", { class: "badge " + r.status }, JX.status(r.status)) },
        { label: t("tpl.body"), value: (r) => h("span", { title: r.review_reason || "" }, r.body) },
        { label: t("common.actions"), value: actions },
      ], items(answer)));
    } catch (exc) {
      failed(list, exc);
    }
  }

  const form = $('[data-role="new"]');
  if (form) {
    const field = (name) => form.querySelector('[name="' + name + '"]');
    const out = $('[data-role="new-status"]');
    JX.liveCounter(form, field("body"), () => field("category").value, out);
    form.querySelector('[data-action="create"]').addEventListener("click", async () => {
      const body = field("body").value;
      try {
        await api("POST", "/templates", {
          code: field("code").value.trim(), category: field("category").value,
          body, variables: JX.variablesOf(body),
        });
        notice(out, t("tpl.created"), "ok");
        await load();
      } catch (exc) {
        failed(out, exc);
      }
    });
  }
  load();
})();
