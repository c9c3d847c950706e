/* One fence: its settings (GET /fences/{id}), activate / deactivate, and a map of its
   cells (GET /fences/{id}/cells) drawn as SVG - an equirectangular projection around the
   cells' mean latitude, so a circle of metres stays a circle. No tiles: offline. */
"use strict";
(function () {
  const { t, h, $, fill, failed, notice, api, when, num } = JX;
  const id = $("[data-fence]").dataset.fence;
  const status = $('[data-role="status"]');
  const SVG = "http://www.w3.org/2000/svg";
  const M_PER_DEG = 111320;
  const WIDTH = 720, HEIGHT = 480, PAD = 30;

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return el;
  }

  function map(answer) {
    const cells = (answer.items || []).filter((c) => c.lat != null && c.lon != null);
    if (!cells.length) return h("p", { class: "muted" }, t("fence.no_cells"));
    const lat0 = cells.reduce((a, c) => a + c.lat, 0) / cells.length;
    const k = Math.cos(lat0 * Math.PI / 180);
    const project = (lat, lon) => [lon * k * M_PER_DEG, -lat * M_PER_DEG]; // metres
    const points = cells.map((c) => project(c.lat, c.lon));
    const centre = answer.centre ? project(answer.centre.lat, answer.centre.lon) : null;
    const radius = answer.radius_m || 0;
    const xs = points.map((p) => p[0]).concat(centre ? [centre[0] - radius, centre[0] + radius] : []);
    const ys = points.map((p) => p[1]).concat(centre ? [centre[1] - radius, centre[1] + radius] : []);
    const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
    const span = Math.max(maxX - minX, maxY - minY, 200); // metres; at least 200 m across
    const scale = Math.min((WIDTH - 2 * PAD) / Math.max(maxX - minX, span * 0.3),
                           (HEIGHT - 2 * PAD) / Math.max(maxY - minY, span * 0.3));
    const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
    const at = (p) => [WIDTH / 2 + (p[0] - cx) * scale, HEIGHT / 2 + (p[1] - cy) * scale];
    const svg = s("svg", { class: "map", viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img",
                           "aria-label": t("fence.map"), "data-testid": "fence-map" });
    if (centre && radius) {
      const [x, y] = at(centre);
      svg.append(s("circle", { cx: x, cy: y, r: radius * scale, fill: "none", stroke: "#f58518",
                               "stroke-dasharray": "6 4", "stroke-width": 1.5, class: "radius" }));
    }
    cells.forEach((cell, i) => {
      const [x, y] = at(points[i]);
      svg.append(s("circle", { class: "cell", cx: x.toFixed(1), cy: y.toFixed(1), r: 5 },
        s("title", null, `${cell.cell_id} · ${cell.district || ""} · ${cell.kind || ""}`)));
    });
    // a scale bar of a round number of metres, about a fifth of the width
    const target = (WIDTH / 5) / scale;
    const bar = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000].find((m) => m >= target) || 100000;
    const px = bar * scale;
    svg.append(s("line", { x1: PAD, y1: HEIGHT - PAD / 2, x2: PAD + px, y2: HEIGHT - PAD / 2, stroke: "#1f2933", "stroke-width": 2 }));
    svg.append(s("text", { x: PAD, y: HEIGHT - PAD / 2 - 4 }, bar >= 1000 ? bar / 1000 + " km" : bar + " m"));
    return h("div", null, svg, h("p", { class: "muted" }, t("fence.cells") + ": " + num(answer.total) +
      (cells.length < answer.total ? " (" + num(cells.length) + ")" : "")));
  }

  function detail(fence) {
    fill($('[data-out="title"]'), fence.code + " · " + fence.name);
    const rows = [
      [t("common.status"), h("span", { class: "badge " + (fence.enabled ? "active" : "inactive"), "data-testid": "fence-status" }, JX.status(fence.enabled ? "active" : "inactive"))],
      ["scenario", fence.scenario], [t("tpl.code"), fence.template], [t("wiz.category"), fence.category],
      ["hours", (fence.hours || []).join(", ") || "00:00-24:00"], ["dwell", fence.dwell_seconds + " s"],
      ["cap/day", fence.cap_per_day], ["residents", fence.residents], [t("fence.cells"), num(fence.cell_count)],
      ["version", fence.version], [t("common.updated"), when(fence.updated_at)],
    ];
    fill($('[data-role="detail"]'), h("table", null, h("tbody", null,
      rows.map(([k, v]) => h("tr", null, h("th", null, k), h("td", null, v))))));
    for (const el of document.querySelectorAll("[data-control]")) {
      el.hidden = (el.dataset.control === "activate") === fence.enabled;
    }
  }

  async function load() {
    try {
      detail(await api("GET", "/fences/" + encodeURIComponent(id)));
    } catch (exc) {
      failed(status, exc);
      return;
    }
    try {
      fill($('[data-role="map"]'), map(await api("GET", "/fences/" + encodeURIComponent(id) + "/cells")));
    } catch (exc) {
      failed($('[data-role="map"]'), exc);
    }
  }

  for (const el of document.querySelectorAll("[data-control]")) {
    el.addEventListener("click", async () => {
      if (el.dataset.confirm !== undefined && !window.confirm(t("common.confirm"))) return;
      try {
        detail(await api("POST", "/fences/" + encodeURIComponent(id) + "/" + el.dataset.control));
        notice(status, t("common.done"), "ok");
      } catch (exc) {
        failed(status, exc);
      }
    });
  }
  load();
})();
