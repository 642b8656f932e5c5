/* Study page: job progress, three-plane viewer (wheel/slider scroll, W/L presets + drag),
   overlay toggle/opacity, lesion table (click to jump), downloads, comparison, problem reports. */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const {api, el, num} = LS;
  const studyId = document.getElementById("study").dataset.studyId;
  const base = "/api/studies/" + studyId;
  const ct = document.getElementById("ct-img");
  const ov = document.getElementById("ov-img");
  const slider = document.getElementById("slice-slider");
  const state = {plane: "axial", index: {}, level: 50, width: 400, overlay: true, opacity: 0.45, info: null};
  let pending = null;

  function setSize() {
    const info = state.info, [rows, cols] = info.size[state.plane], [pr, pc] = info.pixel_mm[state.plane];
    const h = rows * pr, w = cols * pc, scale = Math.min(640 / w, 640 / h);
    const viewer = document.getElementById("viewer");
    viewer.style.width = Math.round(w * scale) + "px";
    viewer.style.height = Math.round(h * scale) + "px";
  }

  function render() {
    const idx = state.index[state.plane];
    const q = "plane=" + state.plane + "&index=" + idx;
    // drop stale requests while scrolling fast: only the newest slice is shown
    const token = {};
    pending = token;
    const img = new Image();
    img.onload = () => { if (pending === token) { ct.src = img.src; ct.dataset.index = String(idx); ct.dataset.plane = state.plane; } };
    img.src = base + "/slice?" + q + "&level=" + state.level + "&width=" + state.width;
    ov.src = base + "/overlay?" + q;
    ov.style.opacity = state.overlay ? String(state.opacity) : "0";
    slider.max = String(state.info.planes[state.plane] - 1);
    slider.value = String(idx);
    document.getElementById("slice-label").textContent =
      state.plane + " " + (idx + 1) + " / " + state.info.planes[state.plane];
    document.getElementById("wl-label").textContent = "W " + Math.round(state.width) + " / L " + Math.round(state.level);
  }

  function go(plane, index) {
    if (plane && plane !== state.plane) {
      state.plane = plane;
      document.querySelectorAll("#plane-buttons button").forEach((b) => b.classList.toggle("active", b.dataset.plane === plane));
      setSize();
    }
    const n = state.info.planes[state.plane];
    state.index[state.plane] = Math.max(0, Math.min(n - 1, index ?? state.index[state.plane]));
    render();
  }

  function initViewer(info) {
    state.info = info;
    for (const p of ["axial", "coronal", "sagittal"]) state.index[p] = Math.floor(info.planes[p] / 2);
    if (info.lesions.length) {  // start on the largest lesion
      const big = info.lesions.reduce((a, b) => ((b.volume_ml || 0) > (a.volume_ml || 0) ? b : a));
      Object.assign(state.index, big.viewer_index);
    }
    document.getElementById("viewer-section").hidden = false;
    document.getElementById("liver-volume").textContent = num(info.liver_volume_ml) + " ml";
    document.getElementById("tumor-volume").textContent = num(info.tumor_volume_ml, 2) + " ml";
    document.getElementById("tumor-burden").textContent = num(info.tumor_burden_percent, 2) + " %";
    document.querySelector("#lesion-table tbody").replaceChildren(...info.lesions.map((l) => {
      const loc = l.location ? Object.values(l.location).join(", ") : "";
      return el("tr", {dataset: {lesion: l.id}, tabindex: "0", title: "show the largest slice",
        on: {click: () => selectLesion(l)}},
        el("td", {}, l.id), el("td", {}, num(l.volume_ml, 2)), el("td", {}, num(l.longest_axial_diameter_mm)),
        el("td", {}, l.recist_measurable ? "yes" : "no"), el("td", {}, loc));
    }));
    document.getElementById("report-warnings").replaceChildren(...(info.warnings || []).map((w) => el("li", {}, w)));
    document.getElementById("disclaimer").textContent = info.disclaimer || "";
    setSize();
    render();
  }

  function selectLesion(l) {
    document.querySelectorAll("#lesion-table tr").forEach((r) => r.classList.toggle("selected", r.dataset.lesion === String(l.id)));
    Object.assign(state.index, l.viewer_index);
    go("axial", l.viewer_index.axial);
  }

  // ---- interaction
  document.querySelectorAll("#plane-buttons button").forEach((b) => b.addEventListener("click", () => go(b.dataset.plane)));
  document.querySelectorAll("#window-buttons button").forEach((b) => b.addEventListener("click", () => {
    const w = state.info.windows[b.dataset.window];
    state.level = w.level; state.width = w.width;
    document.querySelectorAll("#window-buttons button").forEach((x) => x.classList.toggle("active", x === b));
    render();
  }));
  slider.addEventListener("input", () => go(null, parseInt(slider.value, 10)));
  const viewer = document.getElementById("viewer");
  viewer.addEventListener("wheel", (ev) => { ev.preventDefault(); go(null, state.index[state.plane] + (ev.deltaY > 0 ? 1 : -1)); }, {passive: false});
  let drag = null;
  viewer.addEventListener("mousedown", (ev) => { drag = {x: ev.clientX, y: ev.clientY, level: state.level, width: state.width}; ev.preventDefault(); });
  window.addEventListener("mouseup", () => { drag = null; });
  window.addEventListener("mousemove", (ev) => {
    if (!drag) return;
    state.width = Math.max(1, drag.width + (ev.clientX - drag.x) * 4);
    state.level = drag.level - (ev.clientY - drag.y) * 2;
    document.querySelectorAll("#window-buttons button").forEach((x) => x.classList.remove("active"));
    render();
  });
  document.getElementById("overlay-toggle").addEventListener("change", (ev) => { state.overlay = ev.target.checked; render(); });
  document.getElementById("overlay-opacity").addEventListener("input", (ev) => { state.opacity = parseFloat(ev.target.value); render(); });
  document.addEventListener("keydown", (ev) => {
    if (!state.info || ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName)) return;
    if (ev.key === "ArrowUp" || ev.key === "PageUp") go(null, state.index[state.plane] - 1);
    if (ev.key === "ArrowDown" || ev.key === "PageDown") go(null, state.index[state.plane] + 1);
  });

  // ---- status, downloads, comparison, problems
  const LABELS = {"labels.nii.gz": "Label map (NIfTI)", "seg.dcm": "Label map (DICOM-SEG)", "sr.dcm": "Measurements (DICOM SR)", "report.json": "Report (JSON)", "report.html": "Report (HTML)"};

  async function poll() {
    const s = await api(base);
    document.getElementById("study-status").textContent = s.status;
    const bar = document.getElementById("study-progress");
    bar.value = s.status === "done" ? 1 : (s.fraction || 0);
    document.getElementById("study-stage").textContent = s.status === "running" ? (s.stage || "") : "";
    document.getElementById("study-error").textContent = s.error || "";
    if (s.status === "queued" || s.status === "running") { setTimeout(poll, 1500); return; }
    bar.hidden = true;
    if (s.status !== "done") return;
    document.getElementById("downloads").replaceChildren("Downloads: ", ...s.downloads.map((n) =>
      el("a", {href: base + "/files/" + n, class: "button", download: ""}, LABELS[n] || n)));
    initViewer(await api(base + "/viewer"));
    document.getElementById("problem-section").hidden = false;
    loadProblems();
    const others = (await api("/api/studies")).filter((o) => o.id !== studyId && o.status === "done");
    if (others.length) {
      document.getElementById("compare-section").hidden = false;
      document.getElementById("baseline-select").replaceChildren(...others.map((o) => el("option", {value: o.id}, o.label + " (" + LS.when(o.created_at) + ")")));
    }
  }

  async function loadProblems() {
    const list = await api(base + "/problems");
    document.getElementById("problem-list").replaceChildren(...list.map((p) =>
      el("li", {}, "#" + p.id + " " + p.category + " – " + p.status + (p.has_correction ? " (with correction)" : "") + (p.comment ? ": " + p.comment : ""))));
  }

  function lesionChanges(c) {
    const head = ["Baseline #", "Follow-up #", "Diameter (mm)", "Change (mm)", "Change %", "Volume (ml)", "Change (ml)"];
    const rows = (c.matched || []).map((m) => el("tr", {}, el("td", {}, m.baseline_id), el("td", {}, m.followup_id),
      el("td", {}, num(m.baseline_diameter_mm) + " → " + num(m.followup_diameter_mm)), el("td", {}, num(m.diameter_change_mm)),
      el("td", {}, num(m.diameter_change_percent)), el("td", {}, num(m.baseline_volume_ml, 2) + " → " + num(m.followup_volume_ml, 2)),
      el("td", {}, num(m.volume_change_ml, 2))));
    const out = [el("h3", {}, "Lesion changes"),
      el("table", {class: "grid", id: "lesion-changes"}, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))), el("tbody", {}, ...rows)),
      el("p", {}, "New lesions: " + ((c.new || []).join(", ") || "none") + " · disappeared: " + ((c.disappeared || []).join(", ") || "none"))];
    const sod = c.sum_of_diameters;
    if (sod) out.push(el("p", {}, "Sum of target diameters: " + num(sod.baseline_mm) + " → " + num(sod.followup_mm) + " mm (" + num(sod.change_percent) + " %)" + (sod.category ? ", " + sod.category : "")));
    for (const w of c.warnings || []) out.push(el("p", {class: "warnings"}, w));
    return out;
  }

  document.getElementById("compare-button").addEventListener("click", async () => {
    const out = document.getElementById("compare-result");
    try {
      const r = await api(base + "/compare?baseline=" + encodeURIComponent(document.getElementById("baseline-select").value));
      const rows = r.summary.map((m) => el("tr", {}, el("td", {}, m.measure), el("td", {}, num(m.baseline, 2)),
        el("td", {}, num(m.followup, 2)), el("td", {}, num(m.change, 2)), el("td", {}, num(m.change_percent, 1))));
      const parts = [el("table", {class: "grid"}, el("thead", {}, el("tr", {}, ...["Measure", "Baseline", "Follow-up", "Change", "Change %"].map((h) => el("th", {}, h)))), el("tbody", {}, ...rows))];
      if (r.lesions) parts.push(...lesionChanges(r.lesions));
      out.replaceChildren(...parts);
    } catch (e) { out.replaceChildren(el("p", {class: "error"}, e.message)); }
  });

  document.getElementById("problem-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const status = document.getElementById("problem-status");
    const fd = new FormData();
    fd.append("category", document.getElementById("problem-category").value);
    fd.append("comment", document.getElementById("problem-comment").value);
    const file = document.getElementById("problem-file").files[0];
    if (file) fd.append("correction", file);
    status.textContent = "sending…";
    try {
      const p = await api(base + "/problems", {method: "POST", body: fd});
      status.textContent = "report #" + p.id + " sent";
      document.getElementById("problem-form").reset();
      loadProblems();
    } catch (e) { status.textContent = "not sent: " + e.message; }
  });

  poll().catch((e) => { document.getElementById("study-error").textContent = e.message; });
});
