/* Administrator pages: model registry (register, validation gate, confirmed activation),
   monitoring, problem triage, audit log. */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const {api, el, num, when} = LS;
  const page = document.body.dataset.page;
  const tbody = (id) => document.querySelector("#" + id + " tbody");
  const KINDS = {cascade: "cascade (liver + tumor)", single: "single checkpoint", incomplete: "incomplete folder"};

  // ---------------------------------------------------------------- models
  let modelList = [];
  function gateCell(m) {
    const g = m.gate;
    if (!g) return el("td", {class: "gate-none"}, "not run");
    return el("td", {class: g.passed ? "gate-pass" : "gate-fail"}, (g.passed ? "passed: " : "failed: ") + g.message +
      (g.seconds ? " (" + num(g.seconds, 0) + " s, " + when(g.ran_at) + ")" : ""));
  }
  function metricsCell(metrics) {
    const rows = Object.entries(metrics || {}).filter(([, v]) => typeof v !== "object");
    return el("td", {}, rows.length ? el("ul", {class: "plain small"}, ...rows.map(([k, v]) =>
      el("li", {}, k.replace(/_/g, " ") + ": " + (typeof v === "number" ? num(v, 3) : v)))) : "–");
  }
  async function models() {
    modelList = await api("/api/admin/models");
    tbody("models-table").replaceChildren(...modelList.map((m) => {
      const problems = m.activation_problems || [];
      const actions = [];
      if (m.status !== "active") {
        actions.push(el("button", {type: "button", dataset: {action: "gate"}, on: {click: (e) => runGate(m, e.target)}}, "Run gate"));
        actions.push(el("button", {type: "button", dataset: {action: "active"}, disabled: problems.length > 0,
          title: problems.length ? "cannot be activated: " + problems.join("; ") : "make this the model of every new job",
          on: {click: () => askActivate(m)}}, "Activate…"));
      }
      if (m.status !== "retired") actions.push(el("button", {type: "button", class: "secondary", dataset: {action: "retired"}, on: {click: () => setStatus(m, "retired")}}, "Retire"));
      if (m.status === "retired") actions.push(el("button", {type: "button", class: "secondary", dataset: {action: "candidate"}, on: {click: () => setStatus(m, "candidate")}}, "Make candidate"));
      return el("tr", {dataset: {id: m.id, status: m.status, name: m.name, version: m.version}},
        el("td", {}, m.name), el("td", {}, m.version), el("td", {}, KINDS[m.kind] || m.kind || "–"), el("td", {}, m.source),
        el("td", {class: "status-" + m.status}, m.status), gateCell(m), metricsCell(m.metrics),
        el("td", {}, m.card ? el("details", {}, el("summary", {}, "card"), el("pre", {class: "card-text"}, m.card)) : "no card"),
        el("td", {}, ...actions, problems.length && m.status !== "active" ? el("p", {class: "hint small why"}, "Not activatable: " + problems.join("; ")) : null));
    }));
  }
  const modelsStatus = (t) => { document.getElementById("models-status").textContent = t; };
  async function runGate(m, button) {
    button.disabled = true; button.textContent = "running the gate…";
    modelsStatus("validation gate running on " + m.name + " " + m.version + " (one segmentation of the sample, about a minute)");
    try { const r = await api("/api/admin/models/" + m.id + "/gate", {method: "POST"});
      modelsStatus("gate " + (r.gate.passed ? "passed" : "failed") + " for " + m.name + " " + m.version + ": " + r.gate.message);
    } catch (e) { modelsStatus("gate not run: " + e.message); }
    models();
  }
  async function setStatus(m, status, reason) {
    try { await api("/api/admin/models/" + m.id + "/status", {method: "POST", json: {status, reason: reason || "", confirm: status === "active"}});
      modelsStatus(m.name + " " + m.version + " is now " + status);
    } catch (e) { modelsStatus("refused: " + e.message); }
    models();
  }
  function askActivate(m) {
    const dlg = document.getElementById("activate-dialog");
    const current = modelList.find((x) => x.status === "active");
    document.getElementById("activate-name").textContent = m.name + " " + m.version;
    document.getElementById("activate-current").textContent = current ? current.name + " " + current.version : "no model";
    document.getElementById("activate-gate").textContent = m.gate ? "Validation gate: " + m.gate.message : "";
    document.getElementById("activate-reason").value = "";
    dlg.dataset.modelId = String(m.id);
    dlg.showModal();
  }
  if (page === "admin-models") {
    const dlg = document.getElementById("activate-dialog");
    document.getElementById("activate-cancel").addEventListener("click", () => dlg.close("cancel"));
    document.getElementById("activate-form").addEventListener("submit", (ev) => {
      const reason = document.getElementById("activate-reason").value.trim();
      const m = modelList.find((x) => String(x.id) === dlg.dataset.modelId);
      if (m && reason.length >= 3) setStatus(m, "active", reason);
      else ev.preventDefault();
    });
    models();
    document.getElementById("model-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const file = document.getElementById("model-file").files[0], name = document.getElementById("model-name").value;
      const st = document.getElementById("model-status");
      st.textContent = "uploading and checking…";
      try {
        const m = await api("/api/admin/models" + (name ? "?name=" + encodeURIComponent(name) : ""),
          {method: "POST", body: file, headers: {"Content-Type": "application/octet-stream"}});
        st.textContent = "registered " + m.name + " " + m.version + " (" + (KINDS[m.kind] || m.kind) + ")"; models();
      } catch (e) { st.textContent = "refused: " + e.message; }
    });
  }

  // ---------------------------------------------------------------- monitoring
  if (page === "admin-monitoring") {
    api("/api/admin/monitoring").then((m) => {
      document.getElementById("queue-length").textContent = m.queue_length;
      document.getElementById("running-count").textContent = m.running;
      tbody("jobs-per-day").replaceChildren(...m.jobs_per_day.map((d) => el("tr", {},
        el("td", {}, d.day), el("td", {}, d.total), el("td", {}, d.done || 0), el("td", {}, d.failed || 0),
        el("td", {}, d.queued || 0), el("td", {}, d.running || 0))));
      tbody("per-model").replaceChildren(...Object.entries(m.per_model).map(([name, s]) => el("tr", {},
        el("td", {}, name), el("td", {}, s.studies_done), el("td", {}, s.flagged + " (" + num(100 * s.flagged_share) + " %)"),
        el("td", {}, el("ul", {class: "plain"}, ...Object.entries(s.latency_s).map(([stage, l]) =>
          el("li", {}, stage.replace(/_/g, " ") + ": " + num(l.p50, 2) + " / " + num(l.p95, 2) + " (n=" + l.n + ")")))))));
      tbody("failures").replaceChildren(...m.failures.map((f) => el("tr", {},
        el("td", {}, f.job_id), el("td", {}, el("a", {href: "/studies/" + f.study_id}, f.study_id.slice(0, 8))),
        el("td", {}, f.model), el("td", {}, when(f.at)), el("td", {}, f.reason || ""))));
    });
  }

  // ---------------------------------------------------------------- problem triage
  const STATES = ["open", "confirmed", "fixed", "rejected"];
  function problemRow(p) {
    const sel = el("select", {}, ...STATES.map((s) => el("option", {value: s, selected: s === p.status}, s)));
    const note = el("input", {value: p.triage_note || "", maxlength: "5000"});
    const saved = el("span", {class: "saved", role: "status"});
    return el("tr", {dataset: {id: p.id, status: p.status}},
      el("td", {}, p.id),
      el("td", {}, el("a", {href: "/studies/" + p.study_id}, p.study_label || "(deleted study)")),
      el("td", {}, p.category_label), el("td", {}, p.comment), el("td", {}, p.reporter || ""),
      el("td", {}, p.has_correction ? el("a", {href: "/api/admin/problems/" + p.id + "/correction"}, p.correction_source + " label map") : "–"),
      el("td", {}, when(p.created_at)), el("td", {}, sel), el("td", {}, note),
      el("td", {}, el("button", {type: "button", on: {click: async () => {
        try {
          const r = await api("/api/admin/problems/" + p.id, {method: "PATCH", json: {status: sel.value, note: note.value}});
          saved.textContent = "saved (" + r.status + ")"; saved.closest("tr").dataset.status = r.status;
        } catch (e) { saved.textContent = "not saved: " + e.message; }
      }}}, "Save"), saved));
  }
  async function problems() {
    const filter = document.getElementById("problem-filter").value;
    const list = await api("/api/admin/problems" + (filter ? "?status=" + filter : ""));
    tbody("problems-table").replaceChildren(...list.map(problemRow));
  }
  if (page === "admin-problems") {
    document.getElementById("problem-filter").addEventListener("change", problems);
    problems();
  }

  // ---------------------------------------------------------------- audit log
  const ACTIONS = {login: "log in", login_failed: "failed log in", login_throttled: "throttled log in", logout: "log out",
    upload: "upload", download: "download", problem_report: "problem report", triage: "triage", model_register: "model registered",
    model_status: "model status", model_gate: "validation gate", study_delete: "study deleted", study_rerun: "study re-run",
    study_edit: "study edited"};
  function detailText(d) {
    return Object.entries(d || {}).map(([k, v]) => k.replace(/_/g, " ") + ": " +
      (v !== null && typeof v === "object" ? Object.entries(v).map(([a, b]) => a + " " + b).join(", ") : v)).join("; ");
  }
  if (page === "admin-audit") {
    api("/api/admin/audit?limit=500").then((list) => tbody("audit-table").replaceChildren(...list.map((e) => el("tr", {dataset: {action: e.action}},
      el("td", {}, when(e.at)), el("td", {}, e.user || ""), el("td", {}, ACTIONS[e.action] || e.action), el("td", {}, e.target || ""),
      el("td", {}, e.ip || ""), el("td", {class: "small"}, detailText(e.detail))))));
  }
});
