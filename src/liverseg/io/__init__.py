"""Reading and writing CT volumes and label maps (no torch here).

Public API (see docs/contracts.md "I/O"):

* :func:`read_volume` / :func:`write_volume`: NIfTI, NRRD, MetaImage, DICOM series (folder/zip),
  DICOM-SEG (labels).
* :func:`read_dicom_series`, :func:`inspect_dicom`, :func:`list_dicom_series`: a DICOM CT
  volume from a folder, zip or DICOMDIR, and which series / stack is chosen (and why).
* :func:`read_dicom_seg` / :func:`write_dicom_seg`: DICOM Segmentation objects (highdicom);
  :func:`write_dicom_sr`: a TID 1500 structured report (content from ``liverseg.reporting``).
* :func:`read_png_stack`: folders of PNG slices (the seed format) as (image, label).
* :func:`read_chaos_case`: a CHAOS CT case folder as (image, label).
* :class:`LabelMap`: the label-map type (uint8 0/1/2, checked when built; resampled
  nearest-neighbour and written as uint8 because of its type); :func:`check_label_map`,
  :func:`binary_mask_to_label`.
* :class:`Grid`, :func:`read_grid`: a voxel grid without voxels (from a file header).
* :func:`load_sample`: the bundled CHAOS-derived demo case.
* :class:`Volume`, :func:`to_canonical`, :class:`Reorientation`: the volume type and exact reorientation.
"""

from liverseg.io.chaos import read_chaos_case
from liverseg.io.dicom_seg import read_dicom_seg, source_datasets, write_dicom_seg
from liverseg.io.dicom_series import inspect_dicom, list_dicom_series, read_dicom_series
from liverseg.io.dicom_sr import write_dicom_sr
from liverseg.io.itk_files import read_grid
from liverseg.io.labels import LABELS, LabelMap, binary_mask_to_label, check_label_map
from liverseg.io.png_stack import read_png_stack
from liverseg.io.readers import read_volume, write_volume
from liverseg.io.sample import SAMPLE_IMAGE, SAMPLE_LABEL, load_sample
from liverseg.io.volume import Grid, Reorientation, Volume, to_canonical

__all__ = [
    "LABELS",
    "SAMPLE_IMAGE",
    "SAMPLE_LABEL",
    "Grid",
    "LabelMap",
    "Reorientation",
    "Volume",
    "binary_mask_to_label",
    "check_label_map",
    "inspect_dicom",
    "list_dicom_series",
    "load_sample",
    "read_chaos_case",
    "read_dicom_seg",
    "read_dicom_series",
    "read_grid",
    "read_png_stack",
    "read_volume",
    "source_datasets",
    "to_canonical",
    "write_dicom_seg",
    "write_dicom_sr",
    "write_volume",
]
