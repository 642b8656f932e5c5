/* Shared helpers: API calls with the CSRF header, safe DOM building, formatting. */
"use strict";

const LS = (() => {
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  async function api(path, opts = {}) {
    const headers = Object.assign({}, opts.headers || {});
    const method = (opts.method || "GET").toUpperCase();
    if (method !== "GET") headers["X-CSRF-Token"] = csrf();
    let body = opts.body;
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    }
    const resp = await fetch(path, {method, headers, body, credentials: "same-origin"});
    if (resp.status === 401) { window.location.href = "/login"; throw new Error("not logged in"); }
    if (!resp.ok) {
      let msg = resp.status + " " + resp.statusText;
      try { const d = await resp.json(); if (d.detail) msg = typeof d.detail === "string" ? d.detail : JSON.stringify(d.detail); } catch (e) { /* not JSON */ }
      throw new Error(msg);
    }
    if (resp.status === 204) return null;
    const type = resp.headers.get("content-type") || "";
    return type.includes("application/json") ? resp.json() : resp;
  }

  /* el("td", {class: "x", dataset: {id: 1}}, "text", child) – text is always set as text, never HTML. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === "dataset") Object.assign(node.dataset, v);
      else if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
      else if (k in node && typeof v !== "string") node[k] = v;
      else node.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === undefined || c === null) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const num = (v, d = 1) => (typeof v === "number" && isFinite(v) ? v.toFixed(d) : "–");
  const when = (iso) => (iso ? iso.replace("T", " ").slice(0, 19) : "");

  document.addEventListener("DOMContentLoaded", () => {
    const out = document.getElementById("logout");
    if (out) out.addEventListener("click", async () => {
      try { await api("/api/logout", {method: "POST"}); } finally { window.location.href = "/login"; }
    });
  });

  return {api, el, num, when, csrf};
})();
window.LS = LS;  // for the ES modules (a top-level const is not a window property)
