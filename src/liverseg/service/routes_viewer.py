"""Viewer API: geometry + lesion table mapped to viewer slices, CT slices and label overlays."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy.orm import Session

from liverseg.service.db import Study
from liverseg.service.deps import get_db, owned_study
from liverseg.service.jobs import read_report
from liverseg.service.viewer import PLANES, StudyVolumes, plane_slice, render_ct_png, render_overlay_png
from liverseg.service.volumes import to_viewer_index

router = APIRouter(tags=["viewer"])

WINDOW_PRESETS = {"liver": (50.0, 400.0), "abdomen": (40.0, 350.0), "bone": (400.0, 1800.0)}
_PNG = {200: {"content": {"image/png": {}}, "description": "PNG image"}}
_CACHE = "private, max-age=3600"


def _volumes(request: Request, study: Study, db: Session | None = None) -> StudyVolumes:
    if db is not None:
        db.commit()  # access is checked: release the database before the (slower) rendering
    return request.app.state.viewer_cache.get(study.id, request.app.state.storage.viewer_dir(study.id))


def _pixel_mm(vols: StudyVolumes) -> dict[str, list[float]]:
    sz, sy, sx = vols.meta["spacing_zyx_mm"]
    return {"axial": [sy, sx], "coronal": [sz, sx], "sagittal": [sz, sy]}


@router.get("/api/studies/{study_id}/viewer")
def viewer_info(request: Request, study: Study = Depends(owned_study)) -> dict[str, Any]:
    """Slice counts and pixel sizes per plane, window presets, measurements and the lesion table.

    Each lesion gets ``viewer_index`` = {plane: slice index} of its largest axial slice through
    its centroid, on the viewer's (canonical) grid.
    """
    vols = _volumes(request, study)
    nz, ny, nx = vols.ct.shape
    report = read_report(request.app.state.storage, study.id) or {}
    lesions = []
    for lesion in report.get("lesions") or []:
        centroid = lesion.get("centroid_voxel_zyx") or [0, 0, 0]
        z = lesion.get("largest_slice", round(centroid[0]))
        vz, vy, vx = to_viewer_index(vols.meta, [z, centroid[1], centroid[2]])
        lesions.append({**lesion, "viewer_index": {"axial": vz, "coronal": vy, "sagittal": vx}})
    return {
        "study_id": study.id,
        "planes": {"axial": nz, "coronal": ny, "sagittal": nx},
        "pixel_mm": _pixel_mm(vols),
        "size": {"axial": [ny, nx], "coronal": [nz, nx], "sagittal": [nz, ny]},
        "windows": {k: {"level": v[0], "width": v[1]} for k, v in WINDOW_PRESETS.items()},
        "liver_volume_ml": report.get("liver_volume_ml"),
        "tumor_volume_ml": report.get("tumor_volume_ml"),
        "tumor_burden_percent": report.get("tumor_burden_percent"),
        "lesion_count": report.get("lesion_count", len(lesions)),
        "lesions": lesions,
        "warnings": report.get("warnings") or [],
        "disclaimer": report.get("disclaimer"),
        "model": report.get("model"),
    }


@router.get("/api/studies/{study_id}/slice", response_class=Response, responses=_PNG)
async def ct_slice(
    request: Request,
    plane: str = Query("axial", description=f"one of {', '.join(PLANES)}"),
    index: int = Query(..., ge=0),
    level: float = Query(50.0, description="window level, HU"),
    width: float = Query(400.0, gt=0, description="window width, HU"),
    study: Study = Depends(owned_study),
    db: Session = Depends(get_db),
) -> Response:
    """The CT slice as an 8-bit grayscale PNG windowed with (level, width)."""
    vols = _volumes(request, study, db)
    png = await run_in_threadpool(lambda: render_ct_png(plane_slice(vols.ct, plane, index), level, width))
    return Response(png, media_type="image/png", headers={"Cache-Control": _CACHE})


@router.get("/api/studies/{study_id}/overlay", response_class=Response, responses=_PNG)
async def label_overlay(
    request: Request,
    plane: str = Query("axial", description=f"one of {', '.join(PLANES)}"),
    index: int = Query(..., ge=0),
    study: Study = Depends(owned_study),
    db: Session = Depends(get_db),
) -> Response:
    """The label slice as an RGBA PNG (liver green, tumor red, background transparent)."""
    vols = _volumes(request, study, db)
    png = await run_in_threadpool(lambda: render_overlay_png(plane_slice(vols.labels, plane, index)))
    return Response(png, media_type="image/png", headers={"Cache-Control": _CACHE})
