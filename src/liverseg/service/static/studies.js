/* Studies page: upload (with the identity a NIfTI file cannot carry) and the list of studies
   with one progress bar per running job. */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const {api, el, num, when} = LS;
  const table = document.getElementById("studies-table");
  const tbody = table.querySelector("tbody");
  const isAdmin = table.dataset.admin === "yes";
  const status = document.getElementById("upload-status");
  let timer = null, uploaded = null;  // {id, label} of the study uploaded from this page

  const params = new URLSearchParams(window.location.search);
  if (params.get("deleted")) document.getElementById("studies-notice").textContent = "Deleted the study \u201c" + params.get("deleted") + "\u201d.";

  function progressCell(s) {
    if (s.status === "done") return el("td", {}, "done");
    if (s.status === "failed") return el("td", {}, "failed");
    const eta = s.eta_s === null || s.eta_s === undefined ? "" : " · ~" + (s.eta_s < 60 ? Math.max(1, Math.round(s.eta_s)) + " s" : Math.round(s.eta_s / 60) + " min") + " left";
    return el("td", {class: "progress-cell"}, el("progress", {max: 1, value: s.progress || 0}),
      " " + (s.progress_label || "") + eta);
  }

  async function refresh() {
    let studies;
    try { studies = await api("/api/studies"); } catch (e) { return; }
    tbody.replaceChildren(...studies.map((s) => el("tr", {dataset: {id: s.id, status: s.status}},
      el("td", {}, el("a", {href: "/studies/" + s.id}, s.label)),
      isAdmin ? el("td", {}, s.owner || "") : null,
      el("td", {}, s.patient_id || "–"), el("td", {}, s.study_date || "–"),
      el("td", {class: "status-" + s.status}, s.status + (s.error ? ": " + s.error : "")),
      progressCell(s),
      el("td", {}, num(s.liver_volume_ml)), el("td", {}, num(s.tumor_burden_percent, 2)),
      el("td", {}, s.lesion_count ?? "–"), el("td", {}, s.model_version ? s.model_name + " " + s.model_version : ""),
      el("td", {}, when(s.created_at)))));
    document.getElementById("studies-empty").hidden = studies.length > 0;
    if (uploaded) {  // the upload message follows its study until it is done
      const s = studies.find((x) => x.id === uploaded.id);
      if (!s) uploaded = null;
      else if (s.status === "done") status.replaceChildren("\u201c" + s.label + "\u201d is ready: ", el("a", {href: "/studies/" + s.id}, "open it"));
      else if (s.status === "failed") status.textContent = "\u201c" + s.label + "\u201d failed: " + (s.error || "");
      else status.textContent = "\u201c" + s.label + "\u201d: " + (s.progress_label || s.status);
    }
    const busy = studies.some((s) => s.status === "queued" || s.status === "running");
    clearTimeout(timer);
    timer = setTimeout(refresh, busy ? 1500 : 10000);
  }

  document.getElementById("upload-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const file = document.getElementById("upload-file").files[0];
    if (!file) return;
    const label = document.getElementById("upload-label").value || file.name.replace(/\.(nii\.gz|nii|zip)$/i, "");
    const bar = document.getElementById("upload-progress");
    // XMLHttpRequest (not fetch) to show upload progress; the body is the raw file; identity goes in headers
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/studies");
    xhr.setRequestHeader("X-Study-Label", encodeURIComponent(label));
    xhr.setRequestHeader("X-Patient-Id", encodeURIComponent(document.getElementById("upload-patient").value));
    xhr.setRequestHeader("X-Study-Date", document.getElementById("upload-date").value);
    xhr.setRequestHeader("X-CSRF-Token", LS.csrf());
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    bar.hidden = false; bar.value = 0; status.textContent = "uploading…";
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) bar.value = e.loaded / e.total; });
    xhr.addEventListener("load", () => {
      bar.hidden = true;
      if (xhr.status === 202) {
        const s = JSON.parse(xhr.responseText);
        uploaded = {id: s.id, label: s.label};
        status.textContent = "\u201c" + s.label + "\u201d uploaded: waiting in the queue";
        document.getElementById("upload-form").reset();
      } else {
        let m = xhr.statusText; try { m = JSON.parse(xhr.responseText).detail; } catch (e) { /* not JSON */ }
        status.textContent = "upload refused: " + m;
      }
      refresh();
    });
    xhr.addEventListener("error", () => { bar.hidden = true; status.textContent = "upload failed (network)"; });
    xhr.send(file);
  });
  document.addEventListener("studies-changed", refresh);  // e.g. a PACS import (pacs.js)
  refresh();
});
