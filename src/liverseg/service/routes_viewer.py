"""Viewer API: the study's description for the browser viewer, its volumes as NIfTI, lesion borders.

The CT and label map are served as the NIfTI files of the viewer cache (int16 HU and uint8
labels, RAS voxel order, see :mod:`liverseg.service.volumes`), straight from disk with
``Content-Encoding: gzip`` (decompressed on the fly for a client that does not accept gzip), to
the logged-in owner or an admin only. A cache written by an older liverseg is rebuilt on first use.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response, StreamingResponse

from liverseg.service.db import Study
from liverseg.service.deps import owned_study
from liverseg.service.jobs import read_report
from liverseg.service.viewer import OutdatedViewerCacheError, StudyViewer, viewer_lesions
from liverseg.service.volumes import build_viewer_cache, read_image_volume, read_label_volume

router = APIRouter(tags=["viewer"])
log = logging.getLogger(__name__)

#: preset -> (level, width) in HU, as in radiology workstations
WINDOW_PRESETS = {
    "liver": (50.0, 400.0),
    "abdomen": (40.0, 350.0),
    "bone": (400.0, 1800.0),
    "lung": (-600.0, 1500.0),
}
VOLUMES = {"ct.nii": "CT (int16 HU)", "labels.nii": "label map (uint8: 0 background, 1 liver, 2 tumor)"}
_NIFTI = {200: {"content": {"application/octet-stream": {}}, "description": "NIfTI-1 file"}}
_rebuild_lock = threading.Lock()


def _rebuild(request: Request, study: Study) -> None:
    """Rebuild an outdated viewer cache from the stored input and label map (once at a time)."""
    storage = request.app.state.storage
    with _rebuild_lock:
        image = read_image_volume(storage.study_dir(study.id) / study.input_name)
        labels = read_label_volume(storage.output_dir(study.id) / "labels.nii.gz")
        build_viewer_cache(image, labels, storage.viewer_dir(study.id))
    log.info("viewer cache of study %s rebuilt (written by an older liverseg)", study.id)


async def study_viewer(request: Request, study: Study) -> StudyViewer:
    """The study's viewer cache (rebuilt when outdated). :func:`~liverseg.service.deps.owned_study`
    has already committed, so no database transaction is held during the file work."""
    cache, folder = request.app.state.viewer_cache, request.app.state.storage.viewer_dir(study.id)
    try:
        return cache.get(study.id, folder)
    except OutdatedViewerCacheError:
        if study.status != "done":
            raise
        await run_in_threadpool(_rebuild, request, study)
        return cache.get(study.id, folder)


@router.get("/api/studies/{study_id}/viewer")
async def viewer_info(request: Request, study: Study = Depends(owned_study)) -> dict[str, Any]:
    """Everything the viewer needs: identity, grid, volume URLs, window presets, slice numbers
    and table positions of the axial slices, measurements and the lesion table with viewer
    coordinates (:func:`liverseg.service.viewer.viewer_lesions`)."""
    identity = study.identity()
    sv = await study_viewer(request, study)
    report = await asyncio.to_thread(read_report, request.app.state.storage, study.id) or {}
    meta = sv.meta
    base = f"/api/studies/{study.id}"
    return {
        "study_id": study.id,
        "identity": identity,
        "shape_ijk": list(reversed(meta["shape_zyx"])),
        "spacing_ijk_mm": list(reversed(meta["spacing_zyx_mm"])),
        "volumes": {"ct": f"{base}/volumes/ct.nii", "labels": f"{base}/volumes/labels.nii"},
        "windows": {k: {"level": v[0], "width": v[1]} for k, v in WINDOW_PRESETS.items()},
        "axial_numbers": meta["axial_numbers"],
        "axial_z_mm": meta["axial_z_mm"],
        "numbering": meta["numbering"],
        "liver_volume_ml": report.get("liver_volume_ml"),
        "tumor_volume_ml": report.get("tumor_volume_ml"),
        "tumor_burden_percent": report.get("tumor_burden_percent"),
        "lesion_count": report.get("lesion_count"),
        "lesions": viewer_lesions(report, meta),
        "location_method": report.get("location_method"),
        "warnings": report.get("warnings") or [],
        "disclaimer": report.get("disclaimer"),
        "model": report.get("model"),
    }


def _inflate(path: Path) -> Iterator[bytes]:
    with gzip.open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            yield block


@router.get("/api/studies/{study_id}/volumes/{name}", response_class=FileResponse, responses=_NIFTI)
async def volume_file(name: str, request: Request, study: Study = Depends(owned_study)) -> Response:
    """``ct.nii`` or ``labels.nii`` of the viewer cache (NIfTI-1, RAS voxel order), gzip-encoded."""
    if name not in VOLUMES:
        raise HTTPException(
            status_code=404, detail=f"volume must be one of {', '.join(VOLUMES)}, got {name!r}"
        )
    sv = await study_viewer(request, study)
    path = sv.folder / f"{name}.gz"
    headers = {"Cache-Control": "private, no-cache", "Vary": "Accept-Encoding"}  # a re-run rewrites it
    if "gzip" not in request.headers.get("accept-encoding", ""):
        return StreamingResponse(_inflate(path), media_type="application/octet-stream", headers=headers)
    return FileResponse(
        path, media_type="application/octet-stream", headers={**headers, "Content-Encoding": "gzip"}
    )


@router.get("/api/studies/{study_id}/lesions/{lesion_id}/border", response_class=Response)
async def lesion_border(lesion_id: int, request: Request, study: Study = Depends(owned_study)) -> Response:
    """Flat RAS voxel indices (little-endian uint32) of a lesion's border, to outline it."""
    sv = await study_viewer(request, study)
    data = sv.border(lesion_id).tobytes()
    return Response(
        data, media_type="application/octet-stream", headers={"Cache-Control": "private, no-cache"}
    )
