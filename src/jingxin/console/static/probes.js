/* Dial tests: each probe with its last result (GET /probes), the history - per probe and
   the recent runs (GET /probes/history) - and "run now" (POST /probes/run). */
"use strict";
(function () {
  const { t, h, $, fill, failed, notice, items, api, table, num, pct, when } = JX;
  const status = $('[data-role="status"]');
  const ok = (value) => (value === null || value === undefined ? "–"
    : h("span", { class: "badge " + (value ? "ok" : "bad") }, JX.status(value ? "ok" : "failed")));
  const ms = (value) => (value === null || value === undefined ? "–" : num(Math.round(value)) + " ms");

  async function load() {
    try {
      const answer = await api("GET", "/probes");
      fill($('[data-role="probes"]'), table([
        { label: t("probe.name"), key: "name" },
        { label: t("hall.service_number"), key: "service_number" },
        { label: "MO", key: "text" },
        { label: "expect", key: "expect" },
        { label: t("probe.last"), value: (p) => (p.last ? ok(p.last.ok) : "–") },
        { label: t("probe.latency"), value: (p) => (p.last ? ms(p.last.latency_ms) : "–"), numeric: true },
        { label: t("probe.at"), value: (p) => (p.last ? when(p.last.started_at) : "–") },
        { label: "", value: (p) => (p.last && p.last.reason) || "" },
      ], items(answer)));
    } catch (exc) {
      failed($('[data-role="probes"]'), exc);
      return;
    }
    try {
      const history = await api("GET", "/probes/history?limit=50");
      fill($('[data-role="history"]'), table([
        { label: t("probe.name"), key: "probe" },
        { label: "runs", value: (s) => num(s.runs), numeric: true },
        { label: "pass", value: (s) => pct(s.pass_rate, 1), numeric: true },
        { label: "p50", value: (s) => ms(s.p50_ms), numeric: true },
        { label: "p95", value: (s) => ms(s.p95_ms), numeric: true },
        { label: t("probe.last"), value: (s) => ok(s.last_ok) },
        { label: t("probe.at"), value: (s) => when(s.last_run_at) },
        { label: "", value: (s) => s.last_failure_reason || "" },
      ], history.probes || []), table([
        { label: t("probe.at"), value: (r) => when(r.started_at) },
        { label: t("probe.name"), key: "probe" },
        { label: t("common.status"), value: (r) => ok(r.ok) },
        { label: t("probe.latency"), value: (r) => ms(r.latency_ms), numeric: true },
        { label: "", value: (r) => r.reason || r.reply || "" },
      ], history.recent || []));
    } catch (exc) {
      failed($('[data-role="history"]'), exc);
    }
  }

  const run = $('[data-action="run"]');
  if (run) {
    run.addEventListener("click", async () => {
      run.disabled = true;
      fill(status);
      try {
        const report = await api("POST", "/probes/run", {});
        notice(status, (report.ok ? "✓ " : "✗ ") + report.results.map((r) => r.probe + ": " + (r.ok ? "ok" : r.reason)).join("; "), report.ok ? "ok" : "warn");
        await load();
      } catch (exc) {
        failed(status, exc);
      } finally {
        run.disabled = false;
      }
    });
  }
  load();
})();
