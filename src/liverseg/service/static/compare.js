/* Follow-up comparison as the study page shows it: study-level changes with readable labels,
   the RECIST 1.1 target-lesion response with the rule that decided it, and the lesions of both
   studies side by side (matched pairs, new, disappeared). */
const {el, num} = window.LS;

function value(v, decimals) {
  if (v === null || v === undefined) return "–";
  return decimals === 0 ? String(Math.round(v)) : num(v, decimals);
}

function signed(v, decimals, unit) {
  if (v === null || v === undefined) return "–";
  return (v > 0 ? "+" : "") + value(v, decimals) + (unit ? " " + unit : "");
}

function studyLine(s) {
  return s.label + " · patient " + (s.patient_id || "?") + " · " + (s.study_date || "no date");
}

function lesionCells(l) {
  if (!l) return [el("td", {class: "empty"}, "—"), el("td", {}), el("td", {}), el("td", {})];
  return [el("td", {}, "#" + l.id), el("td", {}, num(l.longest_axial_diameter_mm) + " × " + num(l.short_axis_mm) + " mm"),
    el("td", {}, num(l.volume_ml, 2) + " ml"), el("td", {}, l.largest_slice_number ? "slice " + l.largest_slice_number : "")];
}

export function renderComparison(r, {onFollowupLesion} = {}) {
  const c = r.lesions, sod = c.sum_of_diameters;
  const byId = (list) => Object.fromEntries(list.map((l) => [l.id, l]));
  const bl = byId(r.baseline_lesions), fl = byId(r.followup_lesions), targets = new Set(sod.target_baseline_ids);
  const out = [el("p", {class: "compare-who"}, "Baseline: " + studyLine(r.baseline_study) + " → follow-up: " + studyLine(r.followup_study))];

  out.push(el("table", {class: "grid", id: "compare-summary"},
    el("thead", {}, el("tr", {}, ...["Measure", "Baseline", "Follow-up", "Change", "Change %"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...r.summary.map((m) => el("tr", {dataset: {measure: m.measure}},
      el("td", {}, m.label + (m.unit ? " (" + m.unit + ")" : "")), el("td", {}, value(m.baseline, m.decimals)),
      el("td", {}, value(m.followup, m.decimals)), el("td", {}, signed(m.change, m.decimals, "")),
      el("td", {}, m.change_percent === null ? "–" : signed(m.change_percent, 1, "%")))))));

  const box = el("div", {class: "recist", id: "recist-box"},
    el("h3", {}, "RECIST 1.1 response (target lesions in the liver)"),
    el("p", {class: "recist-category", id: "recist-category"}, sod.category ? sod.category + " – " + sod.category_name : "no category"),
    el("p", {}, "Why: " + sod.reason),
    el("p", {}, "Sum of target diameters: " + num(sod.baseline_mm) + " mm → " + num(sod.followup_mm) + " mm (" +
      signed(sod.change_mm, 1, "mm") + (sod.change_percent === null ? "" : ", " + signed(sod.change_percent, 1, "%")) + "); target lesions: " +
      (sod.target_baseline_ids.map((i) => "#" + i).join(", ") || "none")),
    el("ul", {class: "rules"}, ...Object.entries(sod.rules).map(([k, text]) => el("li", {class: k === sod.category ? "applied" : ""}, text))),
    el("p", {class: "hint"}, sod.caveats));
  out.push(box);

  const rows = [];
  for (const m of c.matched) {
    const b = bl[m.baseline_id], f = fl[m.followup_id];
    rows.push(el("tr", {class: "clickable-row", dataset: {kind: "matched", followup: m.followup_id},
      on: {click: () => onFollowupLesion && onFollowupLesion(m.followup_id)}},
      el("td", {}, targets.has(m.baseline_id) ? "target" : ""), ...lesionCells(b), ...lesionCells(f),
      el("td", {}, signed(m.diameter_change_mm, 1, "mm") + (m.diameter_change_percent === null ? "" : " (" + signed(m.diameter_change_percent, 1, "%") + ")")),
      el("td", {}, m.volume_change_percent === null ? "–" : signed(m.volume_change_percent, 1, "%"))));
  }
  for (const id of c.new) rows.push(el("tr", {dataset: {kind: "new", followup: id}, on: {click: () => onFollowupLesion && onFollowupLesion(id)}},
    el("td", {}, "new"), ...lesionCells(null), ...lesionCells(fl[id]), el("td", {}, "new lesion"), el("td", {})));
  for (const id of c.disappeared) rows.push(el("tr", {dataset: {kind: "disappeared"}},
    el("td", {}, targets.has(id) ? "target" : ""), ...lesionCells(bl[id]), ...lesionCells(null), el("td", {}, "disappeared"), el("td", {})));
  out.push(el("h3", {}, "Lesions side by side"),
    el("table", {class: "grid small-table", id: "lesion-changes"},
      el("thead", {}, el("tr", {}, el("th", {}), el("th", {colspan: "4"}, "Baseline"), el("th", {colspan: "4"}, "Follow-up"),
        el("th", {}, "Longest diameter change"), el("th", {}, "Volume change"))),
      el("tbody", {}, ...rows)));
  const possible = c.possible || {baseline: 0, followup: 0};
  if (possible.baseline || possible.followup) {
    out.push(el("p", {class: "hint"}, "Possible false positives not compared: " + possible.baseline + " in the baseline, " + possible.followup + " in the follow-up."));
  }
  for (const w of c.warnings || []) out.push(el("p", {class: "warnings"}, w));
  return out;
}
