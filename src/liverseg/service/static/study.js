/* Study page: identity, one progress bar with plain stage names and the time left, downloads,
   the viewer (viewer.js) with its toolbar, status bar and keyboard, the lesion table, painting
   a correction, follow-up comparison (compare.js), problem reports, re-run and delete. */
import {StudyViewer} from "/static/viewer.js";
import {renderComparison} from "/static/compare.js";

const {api, el, num, when} = window.LS;
const root = document.getElementById("study");
const studyId = root.dataset.studyId;
const base = "/api/studies/" + studyId;
const $ = (id) => document.getElementById(id);
const DOWNLOADS = {"labels.nii.gz": "Label map (NIfTI)", "seg.dcm": "Label map (DICOM-SEG)", "sr.dcm": "Measurements (DICOM SR)",
  "report.json": "Report (JSON)", "report.html": "Report (HTML)"};
const PRESET_KEYS = ["liver", "abdomen", "bone", "lung"];
let viewer = null, lesions = [], study = null;

function duration(s) {
  if (s === null || s === undefined) return "estimating the time left…";
  if (s < 60) return "about " + Math.max(1, Math.round(s)) + " s left";
  return "about " + Math.round(s / 60) + " min left";
}

function showIdentity(s) {
  const rows = [["Patient ID", s.patient_id], ["Accession", s.accession_number], ["Study date", s.study_date],
    ["Series", s.series_description], ["Input", s.input_kind === "dicom" ? "DICOM series" : "NIfTI file"]];
  if (s.deidentified) rows.push(["De-identified", "pseudonyms"]);
  $("identity").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v || "–")]));
  $("study-model").textContent = s.model_name ? "· model " + s.model_name + " " + s.model_version : "";
}

async function poll() {
  study = await api(base);
  showIdentity(study);
  $("study-status").textContent = study.status;
  $("study-error").textContent = study.error || "";
  const busy = study.status === "queued" || study.status === "running";
  $("progress-box").hidden = !busy;
  $("rerun-button").hidden = busy;
  if (busy) {
    $("study-progress").value = study.progress || 0;
    const queue = study.queue_position ? " (" + study.queue_position + " job(s) ahead)" : "";
    $("study-stage").textContent = study.progress_label + queue + " · " + Math.round(100 * (study.progress || 0)) + " %";
    $("study-eta").textContent = duration(study.eta_s);
    setTimeout(() => poll().catch(showError), 1000);
    return;
  }
  if (study.status !== "done") return;
  $("downloads").replaceChildren("Downloads: ", ...study.downloads.map((n) =>
    el("a", {href: base + "/files/" + n, class: "button", download: ""}, DOWNLOADS[n] || n)));
  const info = await api(base + "/viewer");
  showReport(info);
  await startViewer(info);
  $("problem-section").hidden = false;
  loadProblems();
  loadBaselines();
}

function showError(e) { $("study-error").textContent = e.message; }

// ------------------------------------------------------------------ report side panel
function showReport(info) {
  $("liver-volume").textContent = num(info.liver_volume_ml) + " ml";
  $("tumor-volume").textContent = num(info.tumor_volume_ml, 2) + " ml";
  $("tumor-burden").textContent = num(info.tumor_burden_percent, 2) + " % of the liver";
  lesions = info.lesions;
  const confirmed = lesions.filter((l) => !l.possible).length, possible = lesions.length - confirmed;
  $("lesion-count").textContent = confirmed + (possible ? " (+ " + possible + " possible)" : "");
  $("no-lesions").hidden = lesions.length > 0;
  $("lesion-table").querySelector("tbody").replaceChildren(...lesions.map((l) => {
    const slices = l.slice_numbers ? l.slice_numbers[0] + "–" + l.slice_numbers[1] : "–";
    const conf = l.confidence === null || l.confidence === undefined ? "n/a" : num(l.confidence, 2);
    return el("tr", {dataset: {lesion: l.id, possible: l.possible ? "yes" : "no"}, tabindex: "0",
      class: l.possible ? "possible" : "", on: {click: () => selectLesion(l), keydown: (e) => { if (e.key === "Enter") selectLesion(l); }}},
      el("td", {}, l.id), el("td", {}, num(l.volume_ml, 2)),
      el("td", {}, num(l.longest_axial_diameter_mm) + " × " + num(l.short_axis_mm) + (l.recist_measurable ? "" : " (< 10 mm)")),
      el("td", {title: "largest: slice " + l.largest_slice_number + ", z " + num(l.largest_slice_z_mm) + " mm"}, slices),
      el("td", {}, num(l.mean_hu, 0)),
      el("td", {}, conf, l.possible ? el("span", {class: "badge"}, "possible false positive") : null),
      el("td", {}, (l.location || {}).description || ""));
  }));
  $("location-method").textContent = info.location_method ? "Location: " + info.location_method : "";
  $("report-warnings").replaceChildren(...(info.warnings || []).map((w) => el("li", {}, w)));
  $("disclaimer").textContent = info.disclaimer || "";
}

async function selectLesion(l) {
  if (!viewer) return;
  document.querySelectorAll("#lesion-table tbody tr").forEach((r) => r.classList.toggle("selected", r.dataset.lesion === String(l.id)));
  const cap = $("lesion-caption");
  cap.hidden = false;
  cap.textContent = "Lesion " + l.id + (l.possible ? " (possible false positive)" : "") + ": " + num(l.longest_axial_diameter_mm) +
    " × " + num(l.short_axis_mm) + " mm, " + num(l.volume_ml, 2) + " ml, slice " + l.largest_slice_number + " (z " +
    num(l.largest_slice_z_mm) + " mm), " + ((l.location || {}).description || "") + (l.outline ? "" : l.possible ? " · not in the label map: no outline" : "");
  cap.dataset.lesion = String(l.id);
  try { await viewer.selectLesion(l); } catch (e) { $("viewer-error").textContent = e.message; }
}

function stepLesion(step) {
  if (!lesions.length) return;
  const cur = viewer.state.selected ? lesions.findIndex((l) => l.id === viewer.state.selected.id) : -1;
  selectLesion(lesions[(cur + step + lesions.length) % lesions.length]);
}

// ------------------------------------------------------------------ viewer
function showStatus(s) {
  $("slice-label").textContent = "Axial image " + s.number + " / " + s.count + " · z " + num(s.z) + " mm";
  $("cor-sag-label").textContent = "Cor " + s.coronal + "/" + s.ny + " · Sag " + s.sagittal + "/" + s.nx;
  $("hu-label").textContent = s.hu ? "HU " + Math.round(s.hu.value) : "HU –";
  $("wl-label").textContent = "W " + Math.round(s.width) + " / L " + Math.round(s.level);
  $("zoom-label").textContent = "zoom " + num(s.zoom, 1) + "×";
  const canvas = $("gl");
  Object.assign(canvas.dataset, {number: s.number, tool: s.tool, zoom: num(s.zoom, 2), level: Math.round(s.level), width: Math.round(s.width)});
  document.querySelectorAll("#tool-buttons button").forEach((b) => b.classList.toggle("active", b.dataset.tool === s.tool));
  if (viewer) {
    const st = viewer.state;
    $("overlay-toggle").checked = st.overlay; $("show-liver").checked = st.liver; $("show-tumor").checked = st.tumor;
    $("overlay-style").value = st.outline ? "outline" : "fill";
  }
}

async function startViewer(info) {
  $("viewer-section").hidden = false;
  $("window-buttons").replaceChildren(...PRESET_KEYS.map((k, i) => {
    const w = info.windows[k];
    return el("button", {type: "button", dataset: {window: k}, class: k === "liver" ? "active" : null, title: "key " + (i + 1),
      on: {click: () => setPreset(k)}}, k[0].toUpperCase() + k.slice(1) + " W" + w.width + "/L" + w.level);
  }));
  viewer = new StudyViewer($("gl"), info, showStatus);
  try {
    await viewer.load();
  } catch (e) { $("viewer-error").textContent = "viewer: " + e.message; throw e; }
  $("gl").dataset.ready = "1";
  bindToolbar();
}

function setPreset(k) {
  const w = viewer.info.windows[k];
  viewer.setWindow(w.level, w.width);
  document.querySelectorAll("#window-buttons button").forEach((b) => b.classList.toggle("active", b.dataset.window === k));
}

function setLayout(layout) {
  viewer.setLayout(layout);
  document.querySelectorAll("#layout-buttons button").forEach((b) => b.classList.toggle("active", b.dataset.layout === layout));
}

function bindToolbar() {
  document.querySelectorAll("#tool-buttons button").forEach((b) => b.addEventListener("click", () => viewer.setTool(b.dataset.tool)));
  document.querySelectorAll("#layout-buttons button").forEach((b) => b.addEventListener("click", () => setLayout(b.dataset.layout)));
  $("overlay-toggle").addEventListener("change", (e) => viewer.setOverlay({overlay: e.target.checked}));
  $("show-liver").addEventListener("change", (e) => viewer.setOverlay({liver: e.target.checked}));
  $("show-tumor").addEventListener("change", (e) => viewer.setOverlay({tumor: e.target.checked}));
  $("overlay-style").addEventListener("change", (e) => viewer.setOverlay({outline: e.target.value === "outline"}));
  $("overlay-opacity").addEventListener("input", (e) => viewer.setOverlay({opacity: parseFloat(e.target.value)}));
  $("clear-measurements").addEventListener("click", () => viewer.clearMeasurements());
  $("reset-view").addEventListener("click", () => { viewer.resetView(); setPreset("liver"); });
  $("gl").addEventListener("mousemove", () => {
    document.querySelectorAll("#window-buttons button").forEach((b) => {
      const w = viewer.info.windows[b.dataset.window];
      b.classList.toggle("active", w.level === viewer.state.level && w.width === viewer.state.width);
    });
  });
  $("correct-start").addEventListener("click", startCorrection);
  $("correct-cancel").addEventListener("click", stopCorrection);
  $("correct-submit").addEventListener("click", submitCorrection);
  $("paint-undo").addEventListener("click", () => viewer.undo());
  document.querySelectorAll("#pen-buttons button").forEach((b) => b.addEventListener("click", () => setPen(parseInt(b.dataset.pen, 10))));
  $("pen-filled").addEventListener("change", () => setPen(viewer.pen.value));
  $("pen-size").addEventListener("input", (e) => viewer.setPenSize(parseInt(e.target.value, 10)));
  window.addEventListener("keydown", onKey, true);
}

const KEYS = {
  ArrowDown: () => viewer.stepImage(1), PageDown: () => viewer.stepImage(1), ArrowUp: () => viewer.stepImage(-1),
  PageUp: () => viewer.stepImage(-1), Home: () => viewer.stepImage("first"), End: () => viewer.stepImage("last"),
  w: () => viewer.setTool("wl"), c: () => viewer.setTool("crosshair"), p: () => viewer.setTool("pan"),
  z: () => viewer.setTool("zoom"), m: () => viewer.setTool("measure"),
  v: () => setLayout({mpr: "axial", axial: "coronal", coronal: "sagittal", sagittal: "mpr"}[viewer.state.layout]),
  r: () => { viewer.resetView(); setPreset("liver"); },
  o: () => viewer.setOverlay({overlay: !viewer.state.overlay}), l: () => viewer.setOverlay({liver: !viewer.state.liver}),
  t: () => viewer.setOverlay({tumor: !viewer.state.tumor}), f: () => viewer.setOverlay({outline: !viewer.state.outline}),
  n: () => stepLesion(1), b: () => stepLesion(-1), d: () => (viewer.painting ? stopCorrection() : startCorrection()),
  "?": () => { $("shortcuts").open = !$("shortcuts").open; },
  Escape: () => { viewer.clearSelection(); $("lesion-caption").hidden = true; document.querySelectorAll("#lesion-table tr").forEach((r) => r.classList.remove("selected")); },
};

function onKey(ev) {
  const tag = document.activeElement ? document.activeElement.tagName : "";
  if (!viewer || ["INPUT", "TEXTAREA", "SELECT"].includes(tag) || ev.altKey || ev.metaKey) return;
  let action = null;
  if (ev.ctrlKey) { if (ev.key.toLowerCase() === "z" && viewer.painting) action = () => viewer.undo(); }
  else if (viewer.painting && ["0", "1", "2"].includes(ev.key)) action = () => setPen(parseInt(ev.key, 10));
  else if (["1", "2", "3", "4"].includes(ev.key)) action = () => setPreset(PRESET_KEYS[parseInt(ev.key, 10) - 1]);
  else action = KEYS[ev.key] || KEYS[ev.key.toLowerCase()];
  if (!action) return;
  ev.preventDefault();
  ev.stopPropagation();  // NiiVue's own canvas keys must not act twice
  action();
}

// ------------------------------------------------------------------ painting a correction
function setPen(value) {
  viewer.setPen(value, $("pen-filled").checked);
  document.querySelectorAll("#pen-buttons button").forEach((b) => b.classList.toggle("active", b.dataset.pen === String(value)));
}

function startCorrection() {
  if (viewer.painting) return;
  try { viewer.startPainting(); } catch (e) { $("correct-status").textContent = e.message; return; }
  setPen(2);
  $("correct-tools").hidden = false;
  $("correct-start").hidden = true;
  $("correct-status").textContent = "painting: left button on any plane";
}

function stopCorrection() {
  if (viewer.painting) viewer.stopPainting();
  $("correct-tools").hidden = true;
  $("correct-start").hidden = false;
}

async function submitCorrection() {
  const status = $("correct-status");
  status.textContent = "sending…";
  try {
    // gzip in the browser: a label map compresses ~100-fold
    const gz = await new Response(new Blob([viewer.paintedLabels()]).stream().pipeThrough(new CompressionStream("gzip"))).blob();
    const fd = new FormData();
    fd.append("category", $("correct-category").value);
    fd.append("comment", $("correct-comment").value);
    fd.append("painted", gz, "painted-labels.gz");
    const p = await api(base + "/problems", {method: "POST", body: fd});
    status.textContent = "correction sent with problem report #" + p.id;
    stopCorrection();
    loadProblems();
  } catch (e) { status.textContent = "not sent: " + e.message; }
}

// ------------------------------------------------------------------ problems, comparison, lifecycle
async function loadProblems() {
  const list = await api(base + "/problems");
  $("problem-list").replaceChildren(...list.map((p) => el("li", {dataset: {id: p.id}}, "#" + p.id + " " + p.category_label + " – " + p.status +
    (p.has_correction ? " (with a " + p.correction_source + " correction)" : "") + (p.comment ? ": " + p.comment : ""))));
}

async function loadBaselines() {
  const others = (await api("/api/studies")).filter((o) => o.id !== studyId && o.status === "done");
  if (!others.length) return;
  const eligible = (o) => o.patient_id && o.patient_id === study.patient_id && o.study_date && study.study_date && o.study_date < study.study_date;
  others.sort((a, b) => (eligible(b) - eligible(a)) || String(b.study_date).localeCompare(String(a.study_date)));
  $("compare-section").hidden = false;
  $("baseline-select").replaceChildren(...others.map((o) => el("option", {value: o.id, dataset: {eligible: eligible(o) ? "yes" : "no"}},
    o.label + " · patient " + (o.patient_id || "?") + " · " + (o.study_date || "no date") + (eligible(o) ? "" : " (not an earlier study of this patient)"))));
}

$("compare-button").addEventListener("click", async () => {
  const out = $("compare-result");
  out.replaceChildren(el("p", {class: "hint"}, "comparing…"));
  try {
    const r = await api(base + "/compare?baseline=" + encodeURIComponent($("baseline-select").value));
    out.replaceChildren(...renderComparison(r, {onFollowupLesion: (id) => { const l = lesions.find((x) => x.id === id); if (l) selectLesion(l); }}));
  } catch (e) { out.replaceChildren(el("p", {class: "error", id: "compare-refusal"}, e.message)); }
});

$("problem-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const status = $("problem-status"), fd = new FormData();
  fd.append("category", $("problem-category").value);
  fd.append("comment", $("problem-comment").value);
  const file = $("problem-file").files[0];
  if (file) fd.append("correction", file);
  status.textContent = "sending…";
  try {
    const p = await api(base + "/problems", {method: "POST", body: fd});
    status.textContent = "report #" + p.id + " sent";
    $("problem-form").reset();
    loadProblems();
  } catch (e) { status.textContent = "not sent: " + e.message; }
});

$("delete-button").addEventListener("click", async () => {
  const label = $("study-title").textContent;
  if (!window.confirm("Delete the study \u201c" + label + "\u201d? Its images, results, problem reports and corrections are removed for good (the audit log keeps that it was deleted).")) return;
  try { await api(base, {method: "DELETE"}); window.location.href = "/?deleted=" + encodeURIComponent(label); }
  catch (e) { showError(e); }
});

$("rerun-button").addEventListener("click", async () => {
  if (!window.confirm("Segment this study again with the active model? The current results are replaced when the new job finishes.")) return;
  try { await api(base + "/rerun", {method: "POST"}); window.location.reload(); } catch (e) { showError(e); }
});

poll().catch(showError);
