"""The content of a DICOM structured report (TID 1500 Measurement Report) of one scan.

Built with highdicom from the JSON report (:func:`liverseg.reporting.build_report`), so the SR
shows exactly the report's numbers; :func:`liverseg.io.write_dicom_sr` writes the file.

Imaging measurements:

* group "liver" (TID 1501, finding Liver): ``Volume`` = the report's ``liver_volume_ml`` (the
  liver including its tumors, ml);
* group "liver tumors" (TID 1501, finding Neoplasm, site Liver): ``Volume`` =
  ``tumor_volume_ml`` and the tumor burden (tumor / liver volume, %) under the local code
  ``99LIVERSEG TUMOR-BURDEN`` (DICOM has no code for it);
* one group per lesion (TID 1411 volumetric ROI, finding Neoplasm, site Liver) referencing its
  own DICOM-SEG segment ("Liver tumor N", same tracking identifier and UID) and the source
  series: ``Volume`` (ml), ``Long axis`` (the longest axial diameter, mm) and ``Short axis``
  (mm). (TID 1411 carries no coordinates: the axes' end points are in the JSON report.)

Only confirmed lesions are reported: a lesion whose ``possible`` key is true (a candidate the
model was not sure of, absent from the label map and the totals) is left out. The liver and
tumor groups also state ``Presence of property``: present or absent; when no liver was found,
the liver group says "absent" and holds no volume (not a 0 ml measurement). Each axis
measurement references the CT image it was measured on (the lesion's largest axial slice), and
the image library lists those images; all source images are in the document's evidence (the
full series would make the SR thousands of content items long). Every group names the
algorithm (liverseg and its model) that produced it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from liverseg import __version__
from liverseg.errors import OutputError
from liverseg.io.volume import Volume
from liverseg.reporting.measure import canonical_scan

__all__ = [
    "CODING_SCHEMES",
    "SegReference",
    "confirmed_lesions",
    "lesion_map",
    "measurement_report",
    "seg_reference",
]

ML = hd.sr.CodedConcept("ml", "UCUM", "milliliter")
MM = codes.UCUM.Millimeter
PERCENT = codes.UCUM.Percent
#: local codes used in the content (declared in the SR's Coding Scheme Identification Sequence)
CODING_SCHEMES = {"99LIVERSEG": "liverseg local codes"}
TUMOR_BURDEN = hd.sr.CodedConcept("TUMOR-BURDEN", "99LIVERSEG", "Tumor burden (tumor volume / liver volume)")
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


def confirmed_lesions(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The report's lesions without the merely ``possible`` ones (see the module docstring)."""
    return [dict(les) for les in report.get("lesions", []) if not les.get("possible", False)]


def lesion_map(image: Volume, labels: Volume, report: Mapping[str, Any]) -> tuple[np.ndarray, list[int]]:
    """Voxels of each confirmed report lesion on the input grid, numbered by the report's ``id``.

    The lesions of the report are the 26-connected tumor components of the label map; each is
    matched to its component by number and checked by voxel volume, or else found by volume
    and centroid (so a report numbering that skips possible lesions still matches).

    Returns:
        int32 array ``(z, y, x)`` (0 outside tumors, else the lesion ``id``) and the ids in
        report order.

    Raises:
        OutputError: a confirmed lesion matches no tumor component, or tumor voxels belong to
            no confirmed lesion.
    """
    scan = canonical_scan(image, labels)
    components = scan.reorientation.to_original_array(scan.lesion_ids)
    counts = np.bincount(scan.lesion_ids.reshape(-1), minlength=scan.n_lesions + 1)
    volumes = counts * labels.voxel_volume_ml
    lesions = confirmed_lesions(report)
    taken: dict[int, int] = {}  # component -> report id
    for les in lesions:
        comp = _match(les, volumes, components, labels, taken)
        taken[comp] = int(les["id"])
    if len(taken) != scan.n_lesions:
        raise OutputError(
            f"the label map has {scan.n_lesions} tumor component(s) but the report lists "
            f"{len(taken)} confirmed lesion(s); cannot reference each lesion's segment"
        )
    lut = np.zeros(scan.n_lesions + 1, dtype=np.int32)
    for comp, lid in taken.items():
        lut[comp] = lid
    return lut[components], [int(les["id"]) for les in lesions]


def _match(
    les: Mapping[str, Any],
    volumes: np.ndarray,
    components: np.ndarray,
    labels: Volume,
    taken: Mapping[int, int],
) -> int:
    lid = int(les["id"])
    tol = 0.5 * labels.voxel_volume_ml + 1e-4  # the report rounds volumes to 1e-4 ml
    if 0 < lid < volumes.size and lid not in taken and abs(volumes[lid] - les["volume_ml"]) <= tol:
        return lid
    candidates = [
        c for c in range(1, volumes.size) if c not in taken and abs(volumes[c] - les["volume_ml"]) <= tol
    ]
    if candidates and les.get("centroid_voxel_zyx"):
        target = np.asarray(les["centroid_voxel_zyx"], dtype=float)

        def distance(c: int) -> float:
            return float(np.linalg.norm(np.argwhere(components == c).mean(axis=0) - target))

        return min(candidates, key=distance)
    if len(candidates) == 1:
        return candidates[0]
    raise OutputError(
        f"report lesion {lid} ({les['volume_ml']} ml) matches no tumor component of the label map"
    )


@dataclass(frozen=True)
class SegReference:
    """What the SR needs to know about the DICOM-SEG it references."""

    sop_instance_uid: str
    source_series_uid: str
    frame_of_reference_uid: str
    #: lesion id -> (segment number, tracking UID)
    lesion_segments: Mapping[int, tuple[int, str]]


def seg_reference(seg: Any) -> SegReference:
    """Read the references from a DICOM-SEG written by :func:`liverseg.io.write_dicom_seg`."""
    lesions: dict[int, tuple[int, str]] = {}
    for item in seg.SegmentSequence:
        tracking = str(item.get("TrackingID", ""))
        if tracking.startswith("lesion "):
            lesions[int(tracking.split()[1])] = (int(item.SegmentNumber), str(item.TrackingUID))
    series = seg.ReferencedSeriesSequence[0].SeriesInstanceUID
    return SegReference(str(seg.SOPInstanceUID), str(series), str(seg.FrameOfReferenceUID), lesions)


def measurement_report(
    report: Mapping[str, Any],
    *,
    seg: SegReference,
    source_images: Sequence[Any],
) -> hd.sr.MeasurementReport:
    """The TID 1500 content of ``report`` (see the module docstring).

    Args:
        report: the JSON report of the scan.
        seg: the DICOM-SEG of the same labels (:func:`seg_reference`).
        source_images: the CT images (headers) in the volume's slice order.

    Raises:
        OutputError: a confirmed lesion has no segment in the SEG.
    """
    model = report.get("model", {})
    algorithm = hd.sr.AlgorithmIdentification(
        name="liverseg",
        version=__version__,
        parameters=[f"model {model.get('name', '?')} {model.get('version', '?')}"],
    )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=["liverseg", __version__]),
            name="liverseg",
            manufacturer_name="liverseg",
            model_name=f"{model.get('name', '?')} {model.get('version', '?')}"[:64],
        ),
    )
    found = bool(report.get("liver_found"))
    lesions = confirmed_lesions(report) if found else []
    liver_site = [hd.sr.FindingSite(codes.SCT.Liver)]

    def presence(present: bool) -> list[Any]:
        value = codes.SCT.Present if present else codes.SCT.Absent
        return [hd.sr.QualitativeEvaluation(codes.DCM.PresenceOfProperty, value)]

    groups: list[Any] = [
        hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="liver"),
            finding_type=codes.SCT.Liver,
            algorithm_id=algorithm,
            qualitative_evaluations=presence(found),
            measurements=[hd.sr.Measurement(codes.SCT.Volume, float(report["liver_volume_ml"]), ML)]
            if found
            else None,
        )
    ]
    if found:
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="liver tumors"),
                finding_type=codes.SCT.Neoplasm,
                finding_sites=liver_site,
                algorithm_id=algorithm,
                qualitative_evaluations=presence(bool(lesions)),
                measurements=[
                    hd.sr.Measurement(codes.SCT.Volume, float(report["tumor_volume_ml"]), ML),
                    hd.sr.Measurement(TUMOR_BURDEN, float(report["tumor_burden_percent"]), PERCENT),
                ],
            )
        )
    axial_images = int(report.get("input", {}).get("axial_axis", 0)) == 0
    library: dict[str, Any] = {}
    for les in lesions:
        image = _axis_image(les, source_images) if axial_images else None
        if image is not None:
            library.setdefault(str(image.SOPInstanceUID), image)
        groups.append(_lesion_group(les, seg, algorithm, liver_site, image))
    return hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
        referenced_images=list(library.values()) or None,
    )


def _axis_image(les: Mapping[str, Any], source_images: Sequence[Any]) -> Any:
    """The source image of the lesion's largest axial slice (where its axes were measured)."""
    k = les.get("largest_slice")
    return source_images[int(k)] if k is not None and 0 <= int(k) < len(source_images) else None


def _lesion_group(
    les: Mapping[str, Any], seg: SegReference, algorithm: Any, site: list[Any], image: Any
) -> Any:
    lid = int(les["id"])
    if lid not in seg.lesion_segments:
        raise OutputError(f"lesion {lid} has no segment in the DICOM-SEG {seg.sop_instance_uid}")
    number, tracking_uid = seg.lesion_segments[lid]
    on_image = (
        None
        if image is None
        else [hd.sr.SourceImageForMeasurement(str(image.SOPClassUID), str(image.SOPInstanceUID))]
    )
    measurements = [
        hd.sr.Measurement(codes.SCT.Volume, float(les["volume_ml"]), ML),
        hd.sr.Measurement(
            codes.SCT.LongAxis, float(les["longest_axial_diameter_mm"]), MM, referenced_images=on_image
        ),
        hd.sr.Measurement(codes.SCT.ShortAxis, float(les["short_axis_mm"]), MM, referenced_images=on_image),
    ]
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=tracking_uid, identifier=f"lesion {lid}"),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=SEG_STORAGE,
            sop_instance_uid=seg.sop_instance_uid,
            segment_number=number,
            source_series=hd.sr.SourceSeriesForSegmentation(seg.source_series_uid),
        ),
        finding_type=codes.SCT.Neoplasm,
        finding_sites=site,
        algorithm_id=algorithm,
        measurements=measurements,
    )
