/* The campaign wizard: audience (a segment counted by POST /segments/preview, or a file of
   the tenant's audience folder) → message (an approved template, or a body with the live
   parts counter of POST /templates/preview) → preview and cost (POST /campaigns/preview)
   → create and schedule (POST /campaigns, then /campaigns/{id}/schedule). Every rule -
   review, policy, parts, pricing - is the API's; this page only gathers and shows. */
"use strict";
(function () {
  const { t, h, $, fill, failed, notice, items, api, num } = JX;
  const field = (name) => $('[name="' + name + '"]');
  const out = (name) => $('[data-out="' + name + '"]');
  const step = (name) => $('[data-step="' + name + '"]');
  const checked = (name) => (document.querySelector('[name="' + name + '"]:checked') || {}).value;
  const segmentStatus = $('[data-role="segment-status"]');
  const state = { segment: null };

  class Problem extends Error {} // said to the user as it is

  /* ---- 1 audience */
  function segmentSpec() {
    try {
      return JSON.parse(field("spec").value);
    } catch (exc) {
      throw new Problem(t("wiz.segment.bad_json") + ": " + exc.message);
    }
  }

  async function count() {
    fill(segmentStatus);
    out("count").textContent = "…";
    try {
      const spec = segmentSpec();
      const answer = await api("POST", "/segments/preview", { spec });
      state.segment = spec;
      out("count").textContent = num(answer.count);
      step("segment").classList.add("done");
      if ((answer.warnings || []).length) {
        fill(segmentStatus, h("ul", { class: "notice warn" }, answer.warnings.map((w) => h("li", null, w))));
      }
    } catch (exc) {
      state.segment = null;
      out("count").textContent = "–";
      step("segment").classList.remove("done");
      failed(segmentStatus, exc);
    }
  }

  async function exampleSegments() {
    const select = field("saved");
    try {
      const examples = items(await api("GET", "/segments"));
      for (const example of examples) {
        select.append(h("option", { value: example.name, title: example.description }, example.name + " · " + example.description));
      }
      select.addEventListener("change", () => {
        const chosen = examples.find((e) => e.name === select.value);
        if (chosen) field("spec").value = JSON.stringify(chosen.spec, null, 2);
        forget();
      });
    } catch (exc) {
      select.closest("label").hidden = true; // nothing to offer; the spec can still be written
    }
  }

  function forget() {
    state.segment = null;
    out("count").textContent = "–";
    step("segment").classList.remove("done");
  }

  function showAudience() {
    for (const el of document.querySelectorAll("[data-audience]")) {
      el.hidden = el.dataset.audience !== checked("audience");
    }
  }

  function audience() {
    if (checked("audience") === "segment") {
      if (!state.segment) throw new Problem(t("wiz.need_segment"));
      return { segment: state.segment };
    }
    const path = field("path").value.trim();
    if (!path) throw new Problem(t("wiz.need_segment"));
    return { path };
  }

  /* ---- 2 message */
  function template() {
    if (checked("source") === "code") {
      const code = field("code").value;
      if (!code) throw new Problem(t("wiz.need_template"));
      return { code };
    }
    const body = field("body").value;
    if (!body.trim()) throw new Problem(t("wiz.need_template"));
    return { body, variables: JX.variablesOf(body) };
  }

  async function approvedTemplates() {
    const select = field("code");
    try {
      const approved = items(await api("GET", "/templates?status=approved&limit=500"));
      if (!approved.length) select.append(h("option", { value: "", disabled: true }, t("wiz.template.none")));
      for (const row of approved) {
        select.append(h("option", { value: row.code, "data-category": row.category },
          row.code + " v" + row.version + " · " + row.body.slice(0, 40)));
      }
    } catch (exc) {
      failed($('[data-role="template-status"]'), exc);
    }
  }

  /* ---- 3 preview: the spec `jingxin campaign run` reads, as JSON */
  function campaignSpec() {
    const name = field("name").value.trim();
    const spec = { name, category: field("category").value, template: template(), audience: audience() };
    if (!name) throw new Problem(t("wiz.need_name"));
    const holdout = field("holdout").value;
    if (holdout) spec.experiment = { holdout: holdout === "none" ? "none" : Number(holdout) };
    const link = field("link").value.trim();
    if (link) spec.link = link;
    return spec;
  }

  function shown(el, exc) {
    return exc instanceof Problem ? notice(el, exc.message, "warn") : failed(el, exc);
  }

  async function preview() {
    const status = $('[data-role="preview-status"]');
    fill(status);
    try {
      const answer = await api("POST", "/campaigns/preview", { spec: campaignSpec() });
      out("recipients").textContent = num(answer.count);
      out("total_parts").textContent = num(answer.parts);
      out("held_out").textContent = num(answer.held_out);
      out("cost").textContent = answer.cost == null ? "–" : Number(answer.cost).toFixed(2);
      const example = (answer.arms || []).map((a) => a.example).find(Boolean);
      out("example").textContent = example ? t("wiz.example") + ": " + example : "";
      const warnings = (answer.warnings || []).concat((answer.arms || []).map((a) => a.error).filter(Boolean));
      if (warnings.length) fill(status, h("ul", { class: "notice warn" }, warnings.map((w) => h("li", null, w))));
      step("preview").classList.add("done");
    } catch (exc) {
      step("preview").classList.remove("done");
      shown(status, exc);
    }
  }

  /* ---- 4 create and schedule */
  async function launch() {
    const status = $('[data-role="launch-status"]');
    const button = $('[data-action="launch"]');
    fill(status);
    button.disabled = true;
    let id = null;
    try {
      const spec = campaignSpec();
      if (!window.confirm(t("common.confirm"))) return;
      id = (await api("POST", "/campaigns", { spec })).id;
      const at = field("at").value;
      await api("POST", "/campaigns/" + id + "/schedule", at ? { at: new Date(at).toISOString() } : {});
      location.assign("/console/campaigns/" + id);
    } catch (exc) {
      shown(status, exc);
      if (id !== null) { // created, not scheduled: the draft is there to look at
        status.append(h("p", null, h("a", { href: "/console/campaigns/" + id }, "#" + id)));
      }
    } finally {
      button.disabled = false;
    }
  }

  if (field("spec")) {
    $('[data-action="count"]').addEventListener("click", count);
    field("spec").addEventListener("input", forget);
    exampleSegments();
  }
  for (const radio of document.querySelectorAll('[name="audience"]')) radio.addEventListener("change", showAudience);
  showAudience();
  JX.liveCounter(step("template"), field("body"), () => field("category").value, $('[data-role="template-status"]'));
  field("body").addEventListener("focus", () => { document.querySelector('[name="source"][value="body"]').checked = true; });
  field("code").addEventListener("change", () => {
    document.querySelector('[name="source"][value="code"]').checked = true;
    const option = field("code").selectedOptions[0];
    if (option && option.dataset.category) field("category").value = option.dataset.category;
  });
  $('[data-action="preview"]').addEventListener("click", preview);
  $('[data-action="launch"]').addEventListener("click", launch);
  approvedTemplates();
})();
