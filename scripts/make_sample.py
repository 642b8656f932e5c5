#!/usr/bin/env python
"""Build the bundled demo sample from CHAOS CT case 3 (CC BY-SA 4.0, see sample/ATTRIBUTION.md).

Reads ``<shared>/chaos-ct-3`` (DICOM_anon + Ground liver PNGs) with
:func:`liverseg.io.read_chaos_case`, verifies the ground-truth pairing and orientation, crops
to the body's bounding box (all slices kept), resamples in-plane to ``--spacing`` mm (linear
for the image, nearest neighbour for the label) and writes:

* ``src/liverseg/sample/chaos_ct3_image.nii.gz`` (int16 HU)
* ``src/liverseg/sample/chaos_ct3_label.nii.gz`` (uint8, 1 = liver)

Usage::

    .venv/bin/python scripts/make_sample.py [--case-dir ../shared/data/chaos-ct-3] [--spacing 1.4]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from liverseg.errors import LiversegError
from liverseg.io import Volume, read_chaos_case, read_volume, write_volume

log = logging.getLogger("make_sample")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CASE = REPO.parent / "shared" / "data" / "chaos-ct-3"
OUT_DIR = REPO / "src" / "liverseg" / "sample"
IMAGE_NAME, LABEL_NAME = "chaos_ct3_image.nii.gz", "chaos_ct3_label.nii.gz"
EXPECTED_SLICES, EXPECTED_LIVER_SLICES = 78, 71
MAX_BYTES = 5 * 1024 * 1024
BODY_HU = -500.0
MARGIN_MM = 5.0


def _hu_agreement(hu: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of mask voxels in the contrast-enhanced liver range 60-200 HU."""
    values = hu[mask]
    return float(((values > 60) & (values < 200)).mean()) if values.size else 0.0


def verify(image: Volume, label: Volume) -> None:
    """Check the known facts of the case and that the masks lie on the liver (raises on failure)."""
    hu, mask = image.array, label.array > 0
    liver_slices = int(mask.any(axis=(1, 2)).sum())
    log.info("slices %d, with liver %d, spacing %s mm", image.shape[0], liver_slices, image.spacing)
    if image.shape[0] != EXPECTED_SLICES or liver_slices != EXPECTED_LIVER_SLICES:
        raise SystemExit(
            f"expected {EXPECTED_SLICES} slices with liver on {EXPECTED_LIVER_SLICES}, got "
            f"{image.shape[0]} and {liver_slices}"
        )
    if not 1.9 < image.spacing[0] < 2.1:
        raise SystemExit(f"expected ~2 mm slice spacing (positions), got {image.spacing[0]:.3f}")
    scores = {
        "as paired": _hu_agreement(hu, mask),
        "slice order reversed": _hu_agreement(hu, mask[::-1]),
        "rows flipped": _hu_agreement(hu, mask[:, ::-1]),
        "columns flipped": _hu_agreement(hu, mask[:, :, ::-1]),
    }
    for name, score in scores.items():
        log.info("mask voxels in 60-200 HU, %-20s %.3f", name + ":", score)
    median = float(np.median(hu[mask]))
    if not 50 <= median <= 150 or max(scores, key=scores.__getitem__) != "as paired":
        raise SystemExit(f"the liver masks do not lie on liver HU (median {median:.0f} HU, scores {scores})")
    # Patient's right is -x in LPS: the liver centroid must be right of the body centroid.
    body = hu > BODY_HU
    liver_x = image.index_to_physical(np.argwhere(mask).mean(axis=0))[0]
    body_x = image.index_to_physical(np.argwhere(body).mean(axis=0))[0]
    log.info("median liver HU %.0f; liver centroid x %.1f mm vs body %.1f mm (LPS)", median, liver_x, body_x)
    if not liver_x < body_x - 20:
        raise SystemExit("expected the liver on the patient's right (LPS x below the body centre)")


def body_box(image: Volume) -> tuple[slice, slice]:
    """In-plane (y, x) bounding box of the largest connected body component, plus a margin."""
    # An in-plane opening (~5 mm) cuts the thin patient table off the body before labelling.
    radius = max(1, round(2.5 / min(image.spacing[1:])))
    disk = np.zeros((1, 2 * radius + 1, 2 * radius + 1), bool)
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disk[0] = yy**2 + xx**2 <= radius**2
    body = ndimage.binary_opening(image.array > BODY_HU, structure=disk)
    labels, n = ndimage.label(body)
    if n == 0:
        raise SystemExit("no voxel above -500 HU: not a CT?")
    largest = int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    _, ys, xs = ndimage.find_objects((labels == largest).astype(np.uint8))[0]
    my, mx = (round(MARGIN_MM / s) for s in image.spacing[1:])
    ny, nx = image.shape[1:]
    return slice(max(ys.start - my, 0), min(ys.stop + my, ny)), slice(
        max(xs.start - mx, 0), min(xs.stop + mx, nx)
    )


def crop(volume: Volume, ys: slice, xs: slice) -> Volume:
    """Crop in-plane; the origin moves to the new first voxel (exact, no interpolation)."""
    origin = volume.index_to_physical(np.array([0, ys.start, xs.start], dtype=float))
    return Volume(volume.array[:, ys, xs], volume.spacing, origin, volume.direction, volume.metadata)


def resample_inplane(volume: Volume, spacing_mm: float, *, nearest: bool) -> Volume:
    """Resample in-plane to ``spacing_mm`` keeping the slices and the field of view's outer edges."""
    img = volume.to_sitk()
    old = np.asarray(volume.spacing_xyz)
    new = np.array([spacing_mm, spacing_mm, old[2]])
    extent = np.asarray(img.GetSize()) * old
    size = [round(float(e / s)) for e, s in zip(extent, new, strict=True)]
    # Align the outer voxel edges: the first centre moves by (new - old) / 2 along x and y.
    shift = (new - old) / 2.0
    shift[2] = 0.0
    origin = np.asarray(img.GetOrigin()) + volume.direction @ shift
    interp = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    out = sitk.Resample(
        img,
        size,
        sitk.Transform(),
        interp,
        origin.tolist(),
        new.tolist(),
        img.GetDirection(),
        -1024.0 if not nearest else 0.0,
        img.GetPixelID(),
    )
    return Volume.from_sitk(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case-dir", type=Path, default=DEFAULT_CASE)
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    parser.add_argument("--spacing", type=float, default=1.4, help="in-plane spacing (mm)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        image, label = read_chaos_case(args.case_dir)
        verify(image, label)
        ys, xs = body_box(image)
        log.info(
            "body box rows %d:%d, columns %d:%d of %s", ys.start, ys.stop, xs.start, xs.stop, image.shape[1:]
        )
        image_c, label_c = crop(image, ys, xs), crop(label, ys, xs)
        image_r = resample_inplane(image_c, args.spacing, nearest=False)
        label_r = resample_inplane(label_c, args.spacing, nearest=True)
        hu = np.clip(np.rint(image_r.array), -1024, 3071).astype(np.int16)
        image_out = write_volume(image_r.with_array(hu), args.out_dir / IMAGE_NAME)
        label_out = write_volume(
            label_r.with_array(label_r.array.astype(np.uint8)), args.out_dir / LABEL_NAME
        )
        for out in (image_out, label_out):
            out.chmod(0o644)  # atomic_path's temporary files are created 0600; the sample is public
        # Re-read what was written and check it (also the liver fraction kept by resampling).
        img2, lab2 = read_volume(image_out), read_volume(label_out, kind="label")
        verify(img2, lab2)
        total = image_out.stat().st_size + label_out.stat().st_size
        ml_before = float((label.array > 0).sum() * label.voxel_volume_ml)
        ml_after = float((lab2.array > 0).sum() * lab2.voxel_volume_ml)
        log.info(
            "wrote %s %s and %s (%.2f MB); liver %.1f ml -> %.1f ml",
            img2.shape,
            img2.spacing,
            label_out.name,
            total / 1e6,
            ml_before,
            ml_after,
        )
        if total > MAX_BYTES:
            raise SystemExit(f"sample is {total / 1e6:.2f} MB, expected <= {MAX_BYTES / 1e6:.2f} MB")
    except LiversegError as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
