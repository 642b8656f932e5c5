"""A single self-contained HTML page for one scan report.

Everything is inline: CSS in a ``<style>`` element, pictures as ``data:image/png;base64`` URIs; the
page loads nothing from anywhere (no scripts, fonts or links), so it can be mailed or archived.
Every string taken from the report is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from liverseg.io.volume import Volume
from liverseg.reporting.overlays import lesion_picture_name, overlay_images
from liverseg.utils import atomic_write_text

__all__ = ["render_html", "write_html"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem auto;max-width:1100px;
color:#1d2630;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ccd}
.disclaimer{background:#fff4d6;border:1px solid #e0b040;padding:.6rem .8rem;border-radius:4px;font-weight:600}
.warn{background:#fde8e8;border:1px solid #d66;padding:.5rem .8rem;border-radius:4px}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccd;padding:.25rem .55rem;text-align:right}
th{background:#eef1f6}td.t,th.t{text-align:left}
figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #223}figcaption{font-size:.9rem;color:#445}
.muted{color:#667;font-size:.85rem}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any, fmt: str = "{:.1f}") -> str:
    return "-" if value is None else _e(fmt.format(value))


def _img(name: str, data: bytes, alt: str) -> str:
    b64 = base64.b64encode(data).decode("ascii")
    return f'<img src="data:image/png;base64,{b64}" alt="{_e(alt)}" data-name="{_e(name)}">'


def _confidence(lesion: dict) -> str:
    """The confidence cell: the model's probability, and a visible flag for possible lesions."""
    conf = lesion.get("confidence")
    text = "n/a" if conf is None else f"{100 * float(conf):.0f} %"
    if lesion.get("possible"):
        return f"<strong>possible false positive</strong> ({text}; not counted)"
    return text


def _rows(pairs: list[tuple[str, str]]) -> str:
    return "".join(f'<tr><th class="t">{_e(k)}</th><td class="t">{v}</td></tr>' for k, v in pairs)


IDENTITY_ROWS = (
    ("label", "Study"),
    ("patient_id", "Patient ID"),
    ("accession_number", "Accession number"),
    ("study_date", "Study date"),
    ("series_description", "Series"),
)


def _identity_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """Identity of the scan (input.identity), the input file name when nothing else is known."""
    info = report.get("input", {})
    ident = info.get("identity") or {}
    rows = [(title, _e(ident[key])) for key, title in IDENTITY_ROWS if ident.get(key)]
    if ident.get("deidentified"):
        rows.append(("De-identified", "yes: patient ID and accession number are pseudonyms"))
    rows.append(("Input file", _e(info.get("name"))))
    return rows


def _slice_cell(les: dict[str, Any]) -> str:
    """``12-18`` slice numbers (1-based, report slice_numbering); 0-based indices for old reports."""
    numbers = les.get("slice_numbers")
    if numbers is None:
        return f"{_e(les['slice_range'][0])}-{_e(les['slice_range'][1])} (index)"
    return f"{_e(numbers[0])}-{_e(numbers[1])}"


def _largest_cell(les: dict[str, Any]) -> str:
    if les.get("largest_slice_number") is None:
        return f"{_e(les['largest_slice'])} (index)"
    return f"{_e(les['largest_slice_number'])} (z {_num(les.get('largest_slice_z_mm'))} mm)"


def _title(report: dict[str, Any]) -> str:
    ident = report.get("input", {}).get("identity") or {}
    parts = [ident.get("label"), ident.get("patient_id"), ident.get("study_date")]
    return " · ".join(str(p) for p in parts if p) or str(report.get("input", {}).get("name"))


def _numbering_text(report: dict[str, Any]) -> str:
    numbering = report.get("slice_numbering")
    if not numbering:
        return "Slices are 0-based indices along the input's axial axis (older report)."
    return (
        f"Slice numbers: {numbering['description']} (slice 1 at z {numbering['slice_1_z_mm']:.1f} mm); "
        "z is the table position (LPS, mm)."
    )


def render_html(report: dict[str, Any], image: Volume, labels: Volume) -> str:
    """The HTML page of ``report`` (with pictures drawn from ``image`` and ``labels``) as a string."""
    pictures = dict(overlay_images(image, labels, report))
    lesions = sorted(report.get("lesions", []), key=lambda les: les["id"])
    model = report.get("model", {})
    timings = report.get("timings_s", {})
    total_s = float(timings["total"]) if "total" in timings else sum(float(v) for v in timings.values())
    geometry = report.get("input", {}).get("geometry", {})
    summary = _rows(
        [
            *_identity_rows(report),
            ("Liver found", "yes" if report.get("liver_found") else "<strong>no</strong>"),
            ("Liver volume (incl. tumor)", f"{_num(report.get('liver_volume_ml'))} ml"),
            ("Tumor volume", f"{_num(report.get('tumor_volume_ml'), '{:.2f}')} ml"),
            ("Tumor burden", f"{_num(report.get('tumor_burden_percent'), '{:.2f}')} % of the liver"),
            ("Lesions", _e(report.get("lesion_count"))),
            (
                "Possible lesions (low model confidence, not counted)",
                _e(report.get("possible_lesion_count", 0)),
            ),
            (
                "RECIST-measurable lesions (>= 10 mm)",
                _e(sum(bool(les["recist_measurable"]) for les in lesions if not les.get("possible"))),
            ),
            ("Model", f"{_e(model.get('name'))} {_e(model.get('version'))}"),
            ("Runtime", f"{_num(total_s)} s"),
            (
                "Grid (z, y, x)",
                f"{_e(geometry.get('shape_zyx'))} voxels of {_e(geometry.get('spacing_zyx_mm'))} mm",
            ),
            ("Report created", _e(report.get("created"))),
        ]
    )
    warnings = "".join(f"<li>{_e(w)}</li>" for w in report.get("warnings", []))
    head = (
        "<tr><th>#</th><th>volume (ml)</th><th>longest axial (mm)</th><th>short axis (mm)</th>"
        "<th>measurable</th><th class='t'>location</th><th>slices</th><th>largest slice</th>"
        "<th>mean HU</th><th>confidence</th></tr>"
    )
    body = "".join(
        f"<tr><td>{_e(les['id'])}</td><td>{_num(les['volume_ml'], '{:.2f}')}</td>"
        f"<td>{_num(les['longest_axial_diameter_mm'])}</td><td>{_num(les['short_axis_mm'])}</td>"
        f"<td>{'yes' if les['recist_measurable'] else 'no'}</td><td class='t'>{_e(les['location']['description'])}</td>"
        f"<td>{_slice_cell(les)}</td><td>{_largest_cell(les)}</td>"
        f"<td>{_num(les['mean_hu'], '{:.0f}')}</td><td>{_confidence(les)}</td></tr>"
        for les in lesions
    )
    names = {les["id"]: lesion_picture_name(les["id"], len(lesions)) for les in lesions}
    pictured = [les for les in lesions if names[les["id"]] in pictures]
    figures = "".join(
        "<figure>"
        + _img(names[les["id"]], pictures[names[les["id"]]], f"lesion {les['id']}")
        + f"<figcaption>Lesion {_e(les['id'])}: {_num(les['longest_axial_diameter_mm'])} x "
        f"{_num(les['short_axis_mm'])} mm, {_num(les['volume_ml'], '{:.2f}')} ml, "
        f"{_e(les['location']['description'])}</figcaption></figure>"
        for les in pictured
    )
    if len(pictured) < len(lesions):
        figures += (
            f'<p class="muted">Pictures of the {len(pictured)} largest lesions only; the table lists '
            f"all {len(lesions)}.</p>"
        )
    software = ", ".join(f"{_e(k)} {_e(v)}" for k, v in report.get("software", {}).items() if v)
    disclaimer = f'<p class="disclaimer">{_e(report.get("disclaimer"))}</p>'
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>liverseg report: {_e(_title(report))}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Liver and liver-tumor segmentation report</h1>",
        disclaimer,
        "<h2>Summary</h2>",
        f"<table>{summary}</table>",
        f'<div class="warn"><strong>Warnings</strong><ul>{warnings}</ul></div>' if warnings else "",
        "<h2>Lesions (largest first)</h2>",
        f"<table>{head}{body}</table>" if lesions else "<p>No lesion was segmented.</p>",
        '<p class="muted">Diameters are measured on axial slices as RECIST 1.1 does (longest diameter and '
        f"the perpendicular short axis on the same slice). {_e(_numbering_text(report))} "
        f"Location: {_e(report.get('location_method') or 'relative to the liver centre (older report).')}</p>",
        figures,
        "<h2>Overview</h2>",
        "<figure>"
        + _img("overview.png", pictures["overview.png"], "three-plane overview")
        + "<figcaption>Axial, coronal and sagittal planes through the liver centre.</figcaption></figure>",
        disclaimer,
        f'<p class="muted">Software: {software}. Report schema {_e(report.get("schema_version"))}.</p>',
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def write_html(report: dict[str, Any], image: Volume, labels: Volume, path: str | Path) -> Path:
    """Write :func:`render_html` to ``path`` atomically (UTF-8); returns the path."""
    return atomic_write_text(path, render_html(report, image, labels))
