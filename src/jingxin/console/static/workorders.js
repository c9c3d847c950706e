/* Work orders: the worklist (GET /workorders?status=) and the lifecycle's moves (POST
   /workorders/{id}/assign|visit|close); the API refuses a move its lifecycle forbids. */
"use strict";
(function () {
  const { t, h, $, fill, failed, table, items, api, button, can, ask, pct, when } = JX;
  const status = $('[data-role="status"]');
  const list = $('[data-role="list"]');
  const filter = $('[name="status"]');

  function move(row, action, body) {
    return async () => {
      await api("POST", "/workorders/" + row.id + "/" + action, body());
      await load();
    };
  }

  function actions(row) {
    if (!can("workorders.write")) return "";
    const state = row.state;
    const shown = [];
    if (state === "created" || state === "assigned") {
      shown.push(button(t("status.assigned"), move(row, "assign",
        () => ({ assignee: ask(t("wo.assignee")) })), status, { "data-act": "assign" }));
    }
    if (state === "assigned" || state === "visited") {
      shown.push(button(t("status.visited"), move(row, "visit", () => ({ note: ask(t("wo.note")) || null })), status, { "data-act": "visit" }));
      shown.push(button(t("status.reactivated"), move(row, "close", () => ({ outcome: "reactivated" })), status, { "data-act": "reactivated" }));
      shown.push(button(t("status.lost"), move(row, "close", () => ({ outcome: "lost" })), status, { class: "danger", "data-act": "lost", "data-confirm": true }));
    }
    return h("span", null, shown);
  }

  async function load() {
    fill(status);
    const query = filter.value ? "&status=" + encodeURIComponent(filter.value) : "";
    try {
      const answer = await api("GET", "/workorders?limit=200" + query);
      fill(list, h("p", { class: "muted" }, t("common.total") + " " + JX.num(answer.total)), table([
        { label: t("common.id"), key: "id" },
        { label: t("wo.branch"), key: "branch" },
        { label: t("common.msisdn"), key: "msisdn" },
        { label: "P", value: (r) => pct(r.propensity, 0), numeric: true },
        { label: t("wo.state"), value: (r) => h("span", { class: "badge " + r.state }, JX.status(r.state)) },
        { label: t("wo.assignee"), key: "assignee" },
        { label: t("common.updated"), value: (r) => when(r.updated_at) },
        { label: t("common.actions"), value: actions },
      ], items(answer)));
    } catch (exc) {
      failed(list, exc);
    }
  }

  filter.addEventListener("change", load);
  load();
})();
