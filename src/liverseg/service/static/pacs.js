/* Import from the configured PACS: search studies (QIDO-RS through the server), import one (WADO-RS). */
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("pacs-form");
  if (!form) return;  // no PACS configured
  const {api, el} = LS;
  const status = document.getElementById("pacs-status");
  const tbody = document.querySelector("#pacs-table tbody");

  async function importStudy(uid, button) {
    button.disabled = true;
    status.textContent = "pulling the series from the PACS…";
    try {
      const study = await api("/api/pacs/import", {method: "POST", json: {study_instance_uid: uid}});
      status.textContent = "imported and queued: " + study.label;
      document.dispatchEvent(new Event("studies-changed"));
    } catch (e) {
      status.textContent = "import failed: " + e.message;
      button.disabled = false;
    }
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const name of ["patient_id", "study_date", "accession"]) {
      const v = document.getElementById("pacs-" + name).value.trim();
      if (v) q.set(name, v);
    }
    status.textContent = "searching…";
    try {
      const studies = await api("/api/pacs/studies?" + q.toString());
      tbody.replaceChildren(...studies.map((s) => el("tr", {},
        el("td", {}, s.StudyDate || ""), el("td", {}, s.PatientID || ""), el("td", {}, s.StudyDescription || ""),
        el("td", {}, (s.ModalitiesInStudy || []).join("/")), el("td", {}, s.NumberOfStudyRelatedSeries ?? ""),
        el("td", {}, el("button", {type: "button", on: {click: (e) => importStudy(s.StudyInstanceUID, e.target)}}, "Import")))));
      status.textContent = studies.length ? "" : "no CT study matches";
    } catch (e) {
      status.textContent = "search failed: " + e.message;
    }
  });
});
