/* One campaign: status and counts (GET /campaigns/{id}), pause / resume / cancel (POST
   /campaigns/{id}/<action>), and the experiment's arms with their intervals (GET
   /experiments/campaign/{id}) as a table and a plotly bar chart (plotly.js is served by
   the console itself: offline). */
"use strict";
(function () {
  const { t, h, $, fill, failed, notice, api, num, pct, when } = JX;
  const id = $("[data-campaign]").dataset.campaign;
  const status = $('[data-role="status"]');
  const metric = $('[name="metric"]');
  const CONTROLS = { pause: ["running", "testing", "scheduled"], resume: ["paused"],
                     cancel: ["draft", "scheduled", "testing", "running", "paused"] };

  function figure(label, value, key) {
    return h("div", { class: "figure" }, h("div", { class: "label" }, label),
      h("div", { class: "value", "data-count": key }, value));
  }

  /* GET /campaigns/{id}: messages by state, parts, cost, the hold-out, each arm */
  function counts(campaign) {
    const messages = campaign.messages || {};
    const total = Object.values(messages).reduce((a, b) => a + b, 0);
    const arms = Object.entries(campaign.arms || {});
    return [
      h("div", { class: "figures" },
        figure(t("camp.messages"), num(total), "messages"),
        Object.entries(messages).map(([state, n]) => figure(labelOf(state), num(n), state)),
        figure(t("wiz.total_parts"), num(campaign.parts), "parts"),
        figure(t("camp.cost"), campaign.cost == null ? "–" : Number(campaign.cost).toFixed(2), "cost"),
        figure(t("wiz.held_out"), num(campaign.held_out), "held_out")),
      arms.length ? JX.table([
        { label: t("camp.arm"), value: (r) => r[0] },
        { label: t("camp.assigned"), value: (r) => num(r[1].assigned), numeric: true },
        { label: t("camp.queued"), value: (r) => num(r[1].queued), numeric: true },
      ], arms) : null,
      Object.keys(campaign.rejected_by || {}).length ? h("p", { class: "muted" }, t("camp.rejected_by") + ": " +
        Object.entries(campaign.rejected_by).map(([k, v]) => k + " " + num(v)).join(", ")) : null,
    ];
  }

  function labelOf(key) {
    for (const prefix of ["msg.", "metric.", "status."]) {
      if (t(prefix + key) !== prefix + key) return t(prefix + key);
    }
    return key;
  }

  async function load() {
    try {
      const campaign = await api("GET", "/campaigns/" + id);
      fill($('[data-out="title"]'), "#" + campaign.id + " " + (campaign.name || ""));
      fill($('[data-out="status"]'), h("span", { class: "badge " + campaign.status }, JX.status(campaign.status)));
      $('[data-out="status"]').dataset.status = campaign.status;
      fill($('[data-role="counts"]'), counts(campaign),
        h("p", { class: "muted" }, [campaign.category, when(campaign.started_at || campaign.created_at)].filter(Boolean).join(" · ")));
      for (const el of document.querySelectorAll("[data-control]")) {
        el.hidden = !CONTROLS[el.dataset.control].includes(campaign.status);
      }
    } catch (exc) {
      failed(status, exc);
    }
  }

  /* the arms, whichever shape: the comparison's (with intervals) or the plain table's */
  function armsOf(answer) {
    const compared = answer.comparison && answer.comparison.arms;
    const rows = compared || answer.arms || answer.items || [];
    return rows.map((a) => {
      const interval = a.interval || a.rate_interval || [];
      return {
        name: a.arm ?? a.name, n: a.n ?? a.assigned, successes: a.successes,
        rate: a.rate, low: a.rate_low ?? a.low ?? interval[0], high: a.rate_high ?? a.high ?? interval[1],
        role: a.role || (a.holdout ? "holdout" : ""), diff: a.diff, p: a.p_adjusted ?? a.p,
        significant: a.significant, lift: a.lift,
      };
    });
  }

  function chart(arms) {
    const el = $('[data-role="chart"]');
    const drawn = arms.filter((a) => a.rate !== null && a.rate !== undefined);
    if (!window.Plotly || !drawn.length) {
      el.hidden = true;
      return;
    }
    el.hidden = false;
    const error = drawn.some((a) => a.low != null) ? {
      type: "data", symmetric: false, visible: true,
      array: drawn.map((a) => (a.high == null ? 0 : a.high - a.rate)),
      arrayminus: drawn.map((a) => (a.low == null ? 0 : a.rate - a.low)),
    } : undefined;
    window.Plotly.react(el, [{
      type: "bar", x: drawn.map((a) => a.name), y: drawn.map((a) => a.rate), error_y: error,
      marker: { color: drawn.map((a) => (a.role === "holdout" || a.role === "control" ? "#bab0ac" : "#4c78a8")) },
      hovertemplate: "%{x}: %{y:.2%}<extra></extra>",
    }], {
      margin: { t: 20, r: 20, b: 40, l: 60 }, yaxis: { tickformat: ".1%", rangemode: "tozero", title: { text: t("camp.rate") } },
      height: 320, font: { family: "system-ui, sans-serif" },
    }, { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud"] });
  }

  async function results() {
    const out = $('[data-role="results"]');
    const note = $('[data-role="results-status"]');
    fill(note);
    try {
      const answer = await api("GET", "/experiments/campaign/" + id + "?metric=" + encodeURIComponent(metric.value));
      const arms = armsOf(answer);
      const notes = answer.notes || [];
      if (notes.length) fill(note, h("ul", { class: "notice warn" }, notes.map((n) => h("li", null, n))));
      if (!arms.length) {
        fill(out, h("p", { class: "muted" }, t("camp.no_results")));
        chart([]);
        return;
      }
      fill(out, JX.table([
        { label: t("camp.arm"), value: (a) => a.name + (a.role === "holdout" ? " (" + t("camp.holdout") + ")" : a.role === "control" ? " (" + t("camp.control") + ")" : "") },
        { label: "n", value: (a) => num(a.n), numeric: true },
        { label: t("metric." + metric.value), value: (a) => num(a.successes), numeric: true },
        { label: t("camp.rate"), value: (a) => pct(a.rate), numeric: true },
        { label: t("camp.interval"), value: (a) => (a.low == null ? "–" : "[" + pct(a.low) + ", " + pct(a.high) + "]"), numeric: true },
        { label: t("camp.diff"), value: (a) => (a.diff == null ? "–" : (a.diff >= 0 ? "+" : "") + (100 * a.diff).toFixed(2) + " pp"), numeric: true },
        { label: t("camp.p"), value: (a) => (a.p == null ? "–" : a.p < 0.0001 ? "<0.0001" : a.p.toFixed(4) + (a.significant ? " ✓" : "")), numeric: true },
      ], arms));
      chart(arms);
    } catch (exc) {
      fill(out);
      chart([]);
      failed(note, exc);
    }
  }

  for (const el of document.querySelectorAll("[data-control]")) {
    el.addEventListener("click", async () => {
      if (el.dataset.confirm !== undefined && !window.confirm(t("common.confirm"))) return;
      el.disabled = true;
      try {
        await api("POST", "/campaigns/" + id + "/" + el.dataset.control, {});
        notice(status, t("common.done"), "ok");
        await load();
      } catch (exc) {
        failed(status, exc);
      } finally {
        el.disabled = false;
      }
    });
  }
  metric.addEventListener("change", results);
  load();
  results();
})();
