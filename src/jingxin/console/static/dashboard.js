/* Dashboard: today's figures, channel health and queue depths (GET /dashboard). */
"use strict";
(function () {
  const { t, h, $, fill, failed, num, table, api } = JX;
  const status = $('[data-role="status"]');

  function healthy(channel) {
    const ok = channel.healthy;
    if (ok === null || ok === undefined) return h("span", { class: "badge" }, channel.health || "?");
    return h("span", { class: "badge " + (ok ? "ok" : "bad"), title: channel.health || "" },
      t(ok ? "dash.healthy" : "dash.unhealthy"));
  }

  async function load() {
    fill(status);
    try {
      const board = await api("GET", "/dashboard");
      const today = board.today || {};
      if (today.day) $('[data-out="day"]').textContent = today.day + " (" + today.timezone + ")";
      for (const el of document.querySelectorAll("[data-figure]")) {
        el.textContent = num(today[el.dataset.figure]);
      }
      fill($('[data-role="channels"]'), table([
        { label: t("dash.channel"), key: "name" },
        { label: t("dash.protocol"), key: "protocol" },
        { label: t("common.status"), value: healthy },
      ], board.channels || []));
      fill($('[data-role="queues"]'), table([
        { label: t("dash.lane"), key: "lane" },
        { label: t("dash.depth"), value: (q) => num(q.depth), numeric: true },
      ], board.queues || []));
    } catch (exc) {
      failed(status, exc);
    }
  }

  $('[data-action="refresh"]').addEventListener("click", load);
  load();
})();
