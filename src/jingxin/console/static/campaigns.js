/* Campaigns: the tenant's campaigns (GET /campaigns), newest first, each a link to its page. */
"use strict";
(function () {
  const { t, h, $, fill, failed, table, items, api, when } = JX;
  const list = $('[data-role="list"]');

  async function load() {
    try {
      const answer = await api("GET", "/campaigns?limit=200");
      fill(list, table([
        { label: t("common.id"), value: (c) => h("a", { href: "/console/campaigns/" + c.id }, "#" + c.id) },
        { label: t("common.name"), value: (c) => h("a", { href: "/console/campaigns/" + c.id }, c.name) },
        { label: t("wiz.category"), key: "category" },
        { label: t("common.status"), value: (c) => h("span", { class: "badge " + c.status }, JX.status(c.status)) },
        { label: t("camp.started"), value: (c) => when(c.started_at || c.start_at || c.created_at) },
      ], items(answer)));
    } catch (exc) {
      failed(list, exc);
    }
  }
  load();
})();
