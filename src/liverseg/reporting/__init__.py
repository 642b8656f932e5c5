"""Clinical outputs of a segmentation (no torch): lesion measurements, report JSON, pictures, HTML.

* :func:`measure_lesions` -- per-lesion table (volume, RECIST-style diameters, location, HU);
* :func:`build_report` / :func:`write_report_json` -- the report (``report.schema.json`` 1.0);
* :func:`write_overlays` -- PNG pictures; :func:`write_html` -- a self-contained HTML page;
* :func:`compare_reports` / :func:`comparison_markdown` -- follow-up versus baseline.
"""

from liverseg.reporting.compare import compare_reports, comparison_markdown
from liverseg.reporting.measure import canonical_scan, measure_lesions, measure_liver
from liverseg.reporting.overlays import overlay_images, write_overlays
from liverseg.reporting.render import render_html, write_html
from liverseg.reporting.report import (
    DISCLAIMER,
    SCHEMA_VERSION,
    build_report,
    load_schema,
    validate_report,
    write_report_json,
)

__all__ = [
    "DISCLAIMER",
    "SCHEMA_VERSION",
    "build_report",
    "canonical_scan",
    "compare_reports",
    "comparison_markdown",
    "load_schema",
    "measure_lesions",
    "measure_liver",
    "overlay_images",
    "render_html",
    "validate_report",
    "write_html",
    "write_overlays",
    "write_report_json",
]
