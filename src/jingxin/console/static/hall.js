/* Service hall: the menu editor (GET/PUT /hall/menus/{service_number}, the 422's every
   problem shown) and a number's conversation (GET /hall/conversations?msisdn=). */
"use strict";
(function () {
  const { t, h, $, fill, failed, notice, items, api, when } = JX;
  const field = (name) => $('[name="' + name + '"]');
  const menuStatus = $('[data-role="menu-status"]');
  const talkStatus = $('[data-role="conversation-status"]');

  async function loadNumbers() {
    try {
      const halls = items(await api("GET", "/hall/menus?limit=500"));
      fill($("#service-numbers"), halls.map((hall) => h("option", { value: hall.service_number }, hall.name)));
      if (halls.length && !field("service_number").value) {
        field("service_number").value = halls[0].service_number;
        await loadMenu();
      }
    } catch (exc) {
      failed(menuStatus, exc);
    }
  }

  async function loadMenu() {
    const number = field("service_number").value.trim();
    if (!number) return;
    fill(menuStatus);
    try {
      const hall = await api("GET", "/hall/menus/" + encodeURIComponent(number));
      field("menu").value = hall.yaml;
      if (hall.edit_problem) notice(menuStatus, hall.edit_problem, "warn");
    } catch (exc) {
      failed(menuStatus, exc);
    }
  }

  async function saveMenu() {
    const number = field("service_number").value.trim();
    try {
      await api("PUT", "/hall/menus/" + encodeURIComponent(number), { yaml: field("menu").value });
      notice(menuStatus, t("common.saved"), "ok");
    } catch (exc) {
      failed(menuStatus, exc);
      const problems = (exc.body && exc.body.error && exc.body.error.fields) || [];
      if (problems.length > 1) {
        menuStatus.append(h("ul", { class: "notice error" },
          problems.map((p) => h("li", null, p.field + ": " + p.message))));
      }
    }
  }

  async function loadConversation() {
    const msisdn = field("msisdn").value.trim();
    const out = $('[data-role="conversation"]');
    fill(talkStatus);
    fill(out);
    if (!msisdn) return;
    try {
      const talk = await api("GET", "/hall/conversations?msisdn=" + encodeURIComponent(msisdn));
      const turns = items(talk);
      if (!turns.length) notice(talkStatus, t("common.none"));
      fill(out, turns.map((turn) => h("div", { class: "bubble " + turn.direction },
        h("small", null, t(turn.direction === "mo" ? "hall.mo" : "hall.mt") + " · " + when(turn.at) +
          (turn.command ? " · " + turn.command : "") + " · " + turn.state),
        turn.text)));
    } catch (exc) {
      failed(talkStatus, exc);
    }
  }

  $('[data-action="load"]').addEventListener("click", loadMenu);
  const save = $('[data-action="save"]');
  if (save) save.addEventListener("click", saveMenu);
  $('[data-action="conversation"]').addEventListener("click", loadConversation);
  field("msisdn").addEventListener("keydown", (e) => { if (e.key === "Enter") loadConversation(); });
  loadNumbers();
})();
