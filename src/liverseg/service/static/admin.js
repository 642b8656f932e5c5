/* Administrator pages: model registry, monitoring, problem triage, audit log. */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const {api, el, num, when} = LS;
  const page = document.body.dataset.page;
  const tbody = (id) => document.querySelector("#" + id + " tbody");

  async function models() {
    const list = await api("/api/admin/models");
    tbody("models-table").replaceChildren(...list.map((m) => el("tr", {dataset: {id: m.id, status: m.status}},
      el("td", {}, m.name), el("td", {}, m.version), el("td", {}, m.source), el("td", {class: "status-" + m.status}, m.status),
      el("td", {}, el("pre", {class: "mono small"}, JSON.stringify(m.metrics, null, 1))),
      el("td", {}, el("details", {}, el("summary", {}, "card"), el("pre", {class: "card-text"}, m.card))),
      el("td", {}, ...["active", "candidate", "retired"].filter((s) => s !== m.status).map((s) =>
        el("button", {type: "button", dataset: {action: s}, on: {click: () => setStatus(m.id, s)}},
          s === "active" ? "Activate" : s === "retired" ? "Retire" : "Make candidate"))))));
  }
  async function setStatus(id, status) {
    try { await api("/api/admin/models/" + id + "/status", {method: "POST", json: {status}}); } catch (e) { alert(e.message); }
    models();
  }
  if (page === "admin-models") {
    models();
    document.getElementById("model-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const file = document.getElementById("model-file").files[0], name = document.getElementById("model-name").value;
      const st = document.getElementById("model-status");
      st.textContent = "uploading…";
      try {
        const m = await api("/api/admin/models" + (name ? "?name=" + encodeURIComponent(name) : ""),
          {method: "POST", body: file, headers: {"Content-Type": "application/octet-stream"}});
        st.textContent = "registered " + m.name + " " + m.version; models();
      } catch (e) { st.textContent = "refused: " + e.message; }
    });
  }

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
          el("li", {}, stage + ": " + num(l.p50, 2) + " / " + num(l.p95, 2) + " (n=" + l.n + ")")))))));
      tbody("failures").replaceChildren(...m.failures.map((f) => el("tr", {},
        el("td", {}, f.job_id), el("td", {}, el("a", {href: "/studies/" + f.study_id}, f.study_id.slice(0, 8))),
        el("td", {}, f.model), el("td", {}, when(f.at)), el("td", {}, f.reason || ""))));
    });
  }

  async function problems() {
    const filter = document.getElementById("problem-filter").value;
    const list = await api("/api/admin/problems" + (filter ? "?status=" + filter : ""));
    tbody("problems-table").replaceChildren(...list.map((p) => {
      const sel = el("select", {}, ...["open", "confirmed", "fixed", "rejected"].map((s) => el("option", {value: s, selected: s === p.status}, s)));
      const note = el("input", {value: p.triage_note || "", maxlength: "5000"});
      return el("tr", {dataset: {id: p.id}},
        el("td", {}, p.id), el("td", {}, el("a", {href: "/studies/" + p.study_id}, p.study_id.slice(0, 8))),
        el("td", {}, p.category), el("td", {}, p.comment), el("td", {}, p.reporter || ""),
        el("td", {}, p.has_correction ? el("a", {href: "/api/admin/problems/" + p.id + "/correction"}, "label map") : "–"),
        el("td", {}, when(p.created_at)), el("td", {}, sel), el("td", {}, note),
        el("td", {}, el("button", {type: "button", on: {click: async () => {
          try { await api("/api/admin/problems/" + p.id, {method: "PATCH", json: {status: sel.value, note: note.value}}); } catch (e) { alert(e.message); }
          problems();
        }}}, "Save")));
    }));
  }
  if (page === "admin-problems") {
    document.getElementById("problem-filter").addEventListener("change", problems);
    problems();
  }

  if (page === "admin-audit") {
    api("/api/admin/audit?limit=500").then((list) => tbody("audit-table").replaceChildren(...list.map((e) => el("tr", {},
      el("td", {}, when(e.at)), el("td", {}, e.user || ""), el("td", {}, e.action), el("td", {}, e.target || ""),
      el("td", {}, e.ip || ""), el("td", {class: "mono small"}, JSON.stringify(e.detail))))));
  }
});
