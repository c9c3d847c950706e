/* Fences: the tenant's geofences (GET /fences). */
"use strict";
(function () {
  const { t, h, $, fill, failed, table, items, api, when, num } = JX;
  const list = $('[data-role="list"]');

  async function load() {
    try {
      const answer = await api("GET", "/fences?limit=500");
      fill(list, table([
        { label: t("fence.code"), value: (f) => h("a", { href: "/console/fences/" + f.id }, f.code) },
        { label: t("common.name"), key: "name" },
        { label: "scenario", key: "scenario" },
        { label: t("common.status"), value: (f) => h("span", { class: "badge " + (f.enabled ? "active" : "inactive") }, JX.status(f.enabled ? "active" : "inactive")) },
        { label: t("fence.cells"), value: (f) => num(f.cell_count), numeric: true },
        { label: t("tpl.code"), key: "template" },
        { label: t("common.updated"), value: (f) => when(f.updated_at) },
      ], items(answer)));
    } catch (exc) {
      failed(list, exc);
    }
  }
  load();
})();
