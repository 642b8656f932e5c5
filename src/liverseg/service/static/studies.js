"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const {api, el, num, when} = LS;
  const tbody = document.querySelector("#studies-table tbody");
  const isAdmin = document.querySelectorAll("#studies-table thead th").length > 9;
  let timer = null;

  async function refresh() {
    let studies;
    try { studies = await api("/api/studies"); } catch (e) { return; }
    tbody.replaceChildren(...studies.map((s) => el("tr", {dataset: {id: s.id, status: s.status}},
      el("td", {}, el("a", {href: "/studies/" + s.id}, s.label)),
      isAdmin ? el("td", {}, s.owner || "") : null,
      el("td", {class: "status-" + s.status}, s.status + (s.error ? ": " + s.error : "")),
      el("td", {}, s.status === "done" ? "" : el("progress", {max: 1, value: s.fraction || 0}), s.status === "running" ? " " + (s.stage || "") : ""),
      el("td", {}, num(s.liver_volume_ml)), el("td", {}, num(s.tumor_burden_percent, 2)),
      el("td", {}, s.lesion_count ?? "–"), el("td", {}, s.model_version ? s.model_name + " " + s.model_version : ""),
      el("td", {}, when(s.created_at)))));
    document.getElementById("studies-empty").hidden = studies.length > 0;
    const busy = studies.some((s) => s.status === "queued" || s.status === "running");
    clearTimeout(timer);
    timer = setTimeout(refresh, busy ? 1500 : 10000);
  }

  document.getElementById("upload-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const file = document.getElementById("upload-file").files[0];
    if (!file) return;
    const label = document.getElementById("upload-label").value || file.name.replace(/\.(nii\.gz|nii|zip)$/i, "");
    const status = document.getElementById("upload-status");
    const bar = document.getElementById("upload-progress");
    // XMLHttpRequest (not fetch) to show upload progress; the body is the raw file.
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/studies");
    xhr.setRequestHeader("X-Study-Label", encodeURIComponent(label));
    xhr.setRequestHeader("X-CSRF-Token", LS.csrf());
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    bar.hidden = false; bar.value = 0; status.textContent = "uploading…";
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) bar.value = e.loaded / e.total; });
    xhr.addEventListener("load", () => {
      bar.hidden = true;
      if (xhr.status === 202) { status.textContent = "uploaded, queued"; document.getElementById("upload-form").reset(); }
      else { let m = xhr.statusText; try { m = JSON.parse(xhr.responseText).detail; } catch (e) { /* */ } status.textContent = "upload refused: " + m; }
      refresh();
    });
    xhr.addEventListener("error", () => { bar.hidden = true; status.textContent = "upload failed (network)"; });
    xhr.send(file);
  });
  document.addEventListener("studies-changed", refresh);  // e.g. a PACS import (pacs.js)
  refresh();
});
