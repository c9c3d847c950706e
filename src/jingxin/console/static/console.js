/* The console's shared script: JX.api (the JSON API with the session's CSRF token),
   JX.t (labels in the page's language), and a few DOM helpers. No dependencies; every
   text goes in as a text node, never as HTML. */
"use strict";

window.JX = (function () {
  const labels = JSON.parse(document.getElementById("jx-labels").textContent);
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";
  const lang = document.body.dataset.lang || "zh";

  function t(key) {
    return Object.prototype.hasOwnProperty.call(labels, key) ? labels[key] : key;
  }

  function status(code) {
    const key = "status." + code;
    return code == null ? "" : (labels[key] || String(code));
  }

  /* requests in flight, on <html data-pending> (what the browser tests wait for) */
  let pending = 0;
  function busy(change) {
    pending += change;
    document.documentElement.dataset.pending = String(pending);
  }
  document.documentElement.dataset.pending = "0";

  class ApiError extends Error {
    constructor(status, message, body, unavailable) {
      super(message);
      this.status = status;
      this.body = body;
      this.unavailable = unavailable; // the route is not there (yet)
    }
  }

  /* Call /api/v1<path>. A string body goes as it is (with opts.type), anything else as
     JSON. Resolves to the parsed answer; rejects with an ApiError carrying the API's
     message. A 401 sends the browser to the log-in page. */
  async function api(method, path, body, opts) {
    const headers = { Accept: (opts && opts.accept) || "application/json" };
    let payload;
    if (body !== undefined && body !== null) {
      if (typeof body === "string") {
        headers["Content-Type"] = (opts && opts.type) || "text/plain; charset=utf-8";
        payload = body;
      } else {
        headers["Content-Type"] = "application/json";
        payload = JSON.stringify(body);
      }
    }
    if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrf;
    let response;
    busy(+1);
    try {
      response = await fetch("/api/v1" + path, {
        method, headers, body: payload, credentials: "same-origin",
      });
    } catch (exc) {
      throw new ApiError(0, t("common.error") + ": " + exc.message, null, false);
    } finally {
      busy(-1);
    }
    if (response.status === 401) {
      const here = location.pathname + location.search;
      location.assign("/console/login?next=" + encodeURIComponent(here));
      throw new ApiError(401, t("login.expired"), null, false);
    }
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json")
      ? await response.json().catch(() => null)
      : await response.text();
    if (!response.ok) {
      const error = (data && data.error) || {};
      // FastAPI's own 404 (no such route) says "Not Found"; ours name the missing thing.
      const missing = response.status === 405 ||
        (response.status === 404 && (!error.message || error.message === "Not Found"));
      const message = missing ? t("common.unavailable")
        : (error.message || response.status + " " + response.statusText);
      throw new ApiError(response.status, message, data, missing);
    }
    return data;
  }

  /* h("p", {class: "x", "data-id": 3, onclick: fn}, "text", child, ...) */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on") && typeof value === "function") {
        el.addEventListener(name.slice(2), value);
      } else if (name === "text") {
        el.textContent = value;
      } else {
        el.setAttribute(name, value === true ? "" : String(value));
      }
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function $(selector, root) {
    return (root || document).querySelector(selector);
  }

  function fill(el, ...children) {
    el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
    return el;
  }

  /* A notice in `el`: kind is "error", "ok", "warn" or "info". */
  function notice(el, message, kind) {
    return fill(el, h("p", { class: "notice " + (kind || "info"), role: kind === "error" ? "alert" : null }, message));
  }

  function failed(el, exc) {
    return notice(el, exc.message || String(exc), exc.unavailable ? "warn" : "error");
  }

  const numbers = new Intl.NumberFormat(lang === "zh" ? "zh-CN" : "en-US");

  function num(value) {
    return value === null || value === undefined || value === "" ? "–" : numbers.format(value);
  }

  function pct(value, digits) {
    return value === null || value === undefined ? "–" : (100 * value).toFixed(digits === undefined ? 2 : digits) + "%";
  }

  function when(value) {
    if (!value) return "–";
    const date = new Date(value);
    return isNaN(date) ? String(value) : date.toLocaleString(lang === "zh" ? "zh-CN" : "en-GB");
  }

  /* A table of `rows` (objects); columns: [{label, key | value(row) -> node|text}]. */
  function table(columns, rows) {
    if (!rows || rows.length === 0) return h("p", { class: "muted" }, t("common.none"));
    const head = h("tr", null, columns.map((c) => h("th", { class: c.numeric ? "num" : null }, c.label)));
    const body = rows.map((row) => h("tr", null, columns.map((c) => {
      const value = c.value ? c.value(row) : row[c.key];
      return h("td", { class: c.numeric ? "num" : null }, value === undefined || value === null ? "–" : value);
    })));
    return h("div", { class: "scroll" }, h("table", null, h("thead", null, head), h("tbody", null, body)));
  }

  /* A table whose columns are the rows' own fields: `preferred` first (those present),
     then any other plain field. For answers whose shape is not fixed yet. */
  function autoTable(rows, preferred, render) {
    const keys = [];
    for (const key of preferred || []) if (rows.some((r) => key in r)) keys.push(key);
    for (const row of rows) {
      for (const [key, value] of Object.entries(row)) {
        if (!keys.includes(key) && (value === null || typeof value !== "object")) keys.push(key);
      }
    }
    return table(keys.map((key) => ({
      label: labels["field." + key] || key,
      value: (row) => (render && render[key] ? render[key](row[key], row) : plain(row[key])),
      numeric: rows.some((r) => typeof r[key] === "number"),
    })), rows);
  }

  function plain(value) {
    if (value === null || value === undefined) return "–";
    if (typeof value === "boolean") return value ? "✓" : "✗";
    if (typeof value === "number") return num(value);
    if (typeof value === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(value)) return when(value);
    return String(value);
  }

  /* items of a list answer ({items, total}) or of a bare array */
  function items(answer) {
    if (Array.isArray(answer)) return answer;
    return (answer && (answer.items || answer.results)) || [];
  }

  function debounce(fn, ms) {
    let timer = null;
    return function (...args) {
      clearTimeout(timer);
      timer = setTimeout(() => fn.apply(this, args), ms);
    };
  }

  /* A button running `action` (a promise); disabled meanwhile, errors shown in `out`. */
  function button(label, action, out, attrs) {
    const el = h("button", Object.assign({ type: "button" }, attrs || {}), label);
    el.addEventListener("click", async () => {
      if (el.dataset.confirm !== undefined && !window.confirm(t("common.confirm"))) return;
      el.disabled = true;
      try {
        await action();
      } catch (exc) {
        if (out && !exc.cancelled) failed(out, exc);
      } finally {
        el.disabled = false;
      }
    });
    return el;
  }

  /* window.prompt, or a cancelled action (which a button ignores) */
  function ask(label, initial) {
    const answer = window.prompt(label, initial || "");
    if (answer === null) throw Object.assign(new Error("cancelled"), { cancelled: true });
    return answer;
  }

  function can(permission) {
    return (document.body.dataset.permissions || "").split(" ").includes(permission);
  }

  /* The names a template body uses ({{ name }}, {% if name %}), declared as text: what
     the live counter previews with until the author declares them otherwise. */
  function variablesOf(body) {
    const found = {};
    const words = /\{[{%]-?\s*(?:if\s+|for\s+\w+\s+in\s+)?([A-Za-z_][A-Za-z0-9_]*)/g;
    const keywords = new Set(["if", "for", "else", "elif", "endif", "endfor", "set", "not", "true", "false", "none"]);
    for (const match of body.matchAll(words)) {
      if (!keywords.has(match[1])) found[match[1]] = "str";
    }
    return found;
  }

  /* The live parts counter: on every edit of `body` (debounced), POST
     /templates/preview and show chars, parts, encoding and the review's verdict in
     root's [data-out] elements, the hits or the error in `out`. */
  function liveCounter(root, body, category, out) {
    const show = (name, value) => {
      const el = root.querySelector('[data-out="' + name + '"]');
      if (el) el.textContent = value;
    };
    let asked = 0;
    const update = debounce(async () => {
      const text = body.value;
      const mine = ++asked;
      if (!text.trim()) {
        ["chars", "parts"].forEach((n) => show(n, 0));
        ["encoding", "verdict"].forEach((n) => show(n, "–"));
        fill(out);
        return;
      }
      try {
        const answer = await api("POST", "/templates/preview", {
          body: text, variables: variablesOf(text), category: category ? category() : "marketing",
        });
        if (mine !== asked) return; // a later edit is on its way
        show("chars", num(answer.chars));
        show("parts", num(answer.parts));
        show("encoding", answer.encoding);
        const review = answer.review || {};
        show("verdict", status(review.verdict));
        const hits = (review.hits || []).map((hit) => h("li", { class: hit.severity },
          hit.severity + ": " + hit.message + (hit.excerpt ? " 「" + hit.excerpt + "」" : "")));
        fill(out, hits.length ? h("ul", { class: "notice " + (review.verdict === "block" ? "error" : "warn") }, hits) : null,
          h("p", { class: "muted", "data-out": "text" }, answer.text));
      } catch (exc) {
        if (mine === asked) failed(out, exc);
      }
    }, 250);
    body.addEventListener("input", update);
    return update;
  }

  return { t, status, api, ApiError, h, $, fill, notice, failed, num, pct, when, table,
           items, autoTable, plain, debounce, button, can, ask, lang, variablesOf, liveCounter };
})();
