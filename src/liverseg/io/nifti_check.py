"""Checks of a NIfTI file's raw header and voxels, done before SimpleITK reads it.

ITK's NIfTI reader silently repairs or hides what is wrong with a file: it reads what is there
of a truncated file, turns a zero or non-finite ``pixdim`` into 1 mm and a negative one into its
absolute value (a flipped axis), and reads NaN/infinite voxels as 0 (a 1,392 ml liver then
measures 107 ml). So the raw header is parsed here (nibabel with ``check=False``: nothing fixed)
and refused with one clear line when:

* it announces more than :data:`liverseg.io.limits.MAX_VOXELS` voxels (checked first, so a gzip
  bomb costs neither memory nor decompression time);
* a spatial ``pixdim`` is zero, negative or not finite;
* a set ``qform``/``sform`` holds non-finite numbers, or the ``sform`` is singular;
* ``scl_slope``/``scl_inter`` are infinite;
* the voxel data is shorter than the header announces (truncated file; for ``.nii.gz`` zlib also
  checks the stream's CRC and length when it ends right after the voxels);
* a floating-point voxel is NaN or infinite.

Decompression is bounded: it stops one block past the voxels the header announces.
"""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import nibabel as nib
import numpy as np

from liverseg.errors import InputError
from liverseg.io.limits import check_voxel_count, count_nonfinite, nonfinite_message

__all__ = ["check_nifti_file", "read_nifti_header"]

_CHUNK = 16 * 1024 * 1024
_SINGULAR_RATIO = 1e-6  # smallest / largest singular value of the sform below this: singular


def _read_exact(fh: BinaryIO, n: int) -> bytes:
    parts, left = [], n
    while left > 0:
        block = fh.read(min(left, _CHUNK))
        if not block:
            break
        parts.append(block)
        left -= len(block)
    return b"".join(parts)


def _parse_header(fh: BinaryIO, path: Path) -> tuple[Any, bytes]:
    """The header (nothing repaired) and the bytes read from the start of the file."""

    raw = _read_exact(fh, 540)
    size_le = int.from_bytes(raw[:4], "little") if len(raw) >= 4 else 0
    size_be = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else 0
    try:
        if 348 in (size_le, size_be):
            return nib.Nifti1Header.from_fileobj(io.BytesIO(raw[:348]), check=False), raw
        if 540 in (size_le, size_be):
            return nib.Nifti2Header.from_fileobj(io.BytesIO(raw), check=False), raw
    except Exception as exc:  # nibabel raises several types for corrupt headers
        raise InputError(f"not a readable NIfTI file ({type(exc).__name__}: {exc})", path) from exc
    raise InputError(
        f"not a readable NIfTI file: the header size field must be 348 or 540, got {size_le}", path
    )


def read_nifti_header(path: Path) -> Any:
    """The raw NIfTI-1/2 header of ``path`` (``.nii`` or ``.nii.gz``), nothing repaired, no voxel read.

    Raises :class:`InputError` naming the file when it is not a readable NIfTI.
    """
    try:
        with gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb") as fh:
            return _parse_header(fh, path)[0]
    except (EOFError, OSError, zlib.error) as exc:
        raise InputError(f"not a readable NIfTI file ({exc})", path) from exc


def _shape(header: Any, path: Path) -> tuple[int, ...]:
    dim = [int(v) for v in header["dim"]]
    ndim = dim[0]
    if not 1 <= ndim <= 7:
        raise InputError(f"not a readable NIfTI file: dim[0] must be 1..7, got {ndim}", path)
    shape = tuple(dim[1 : 1 + ndim])
    if any(s < 1 for s in shape):
        raise InputError(f"not a readable NIfTI file: the header announces data shape {shape}", path)
    return shape


def _check_geometry(header: Any, shape: tuple[int, ...], path: Path) -> None:
    pixdim = np.asarray(header["pixdim"], dtype=float)
    spatial = pixdim[1 : 1 + min(3, len(shape))]
    if not np.all(np.isfinite(spatial)) or np.any(spatial <= 0):
        raise InputError(
            "voxel spacing in the NIfTI header (pixdim) must be positive finite mm, got "
            f"{tuple(round(float(v), 6) for v in spatial)}",
            path,
        )
    if int(header["qform_code"]) > 0:
        quat = [float(header[k]) for k in ("quatern_b", "quatern_c", "quatern_d")]
        offs = [float(header[k]) for k in ("qoffset_x", "qoffset_y", "qoffset_z")]
        if not np.all(np.isfinite([*quat, *offs, pixdim[0]])):
            raise InputError(
                f"the NIfTI qform affine must be finite, got quaternion {quat}, offset {offs}", path
            )
    if int(header["sform_code"]) > 0:
        srow = np.array([header["srow_x"], header["srow_y"], header["srow_z"]], dtype=float)
        if not np.all(np.isfinite(srow)):
            raise InputError(f"the NIfTI sform affine must be finite, got {srow.tolist()}", path)
        sv = np.linalg.svd(srow[:, :3], compute_uv=False)
        if sv[0] == 0 or sv[-1] / sv[0] < _SINGULAR_RATIO:
            raise InputError(
                "the NIfTI sform affine is singular (its voxel axes do not span 3D space), got "
                f"{srow[:, :3].tolist()}",
                path,
            )


def _check_scaling(header: Any, path: Path) -> None:
    slope, inter = float(header["scl_slope"]), float(header["scl_inter"])
    if np.isnan(slope) or slope == 0:  # NIfTI: no scaling
        return
    if not np.isfinite(slope) or not np.isfinite(inter):
        raise InputError(
            f"the NIfTI intensity scaling must be finite, got scl_slope {slope}, scl_inter {inter}", path
        )


def _scan(blocks: Any, dtype: np.dtype) -> tuple[int, int]:
    """Count bytes and non-finite values of the voxel bytes coming in ``blocks``."""
    floating = dtype.kind in "fc"
    bad, got, carry = 0, 0, b""
    for block in blocks:
        got += len(block)
        if floating:
            data = carry + block
            usable = len(data) - len(data) % dtype.itemsize
            values = np.frombuffer(data[:usable], dtype=dtype)
            bad += count_nonfinite(values)
            carry = data[usable:]
    return got, bad


def _stream(fh: BinaryIO, head: bytes, offset: int, n_bytes: int) -> Any:
    """The ``n_bytes`` voxel bytes starting at ``offset``: what ``head`` holds of them, then ``fh``."""
    if offset < len(head):
        first = head[offset : offset + n_bytes]
        yield first
        left = n_bytes - len(first)
    else:
        skip = offset - len(head)
        while skip > 0:  # skip extensions without holding them
            block = fh.read(min(_CHUNK, skip))
            if not block:
                return
            skip -= len(block)
        left = n_bytes
    while left > 0:
        block = fh.read(min(_CHUNK, left))
        if not block:
            return
        left -= len(block)
        yield block


def check_nifti_file(path: Path) -> None:
    """Refuse a NIfTI file whose header or voxels are unusable (see the module docstring)."""

    gz = path.name.lower().endswith(".gz")
    try:
        with gzip.open(path, "rb") if gz else open(path, "rb") as fh:
            header, head = _parse_header(fh, path)
            shape = _shape(header, path)
            check_voxel_count(shape, path, "the NIfTI header")
            _check_geometry(header, shape, path)
            _check_scaling(header, path)
            dtype = header.get_data_dtype()
            n_vox = int(np.prod(shape, dtype=np.int64))
            # single-file NIfTI: voxels start after the header and the 4-byte extension flag
            offset = max(int(header.get_data_offset()), header.sizeof_hdr + 4)
            data_bytes = n_vox * dtype.itemsize
            if gz:
                got, bad = _scan(_stream(fh, head, offset, data_bytes), dtype)
                size = offset + got
                if got == data_bytes:
                    fh.read(_CHUNK)  # at the end of the stream zlib checks its CRC and length
            else:
                size, bad = path.stat().st_size, 0
                if dtype.kind in "fc" and size >= offset + data_bytes:
                    bad = count_nonfinite(
                        np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(n_vox,))
                    )
    except (EOFError, OSError, zlib.error) as exc:
        raise InputError(
            f"the gzip stream is truncated or corrupt ({exc}); expected a complete .nii.gz file "
            "(re-copy or re-export it)",
            path,
        ) from exc
    expected = offset + data_bytes
    if size < expected:
        raise InputError(
            f"the file is truncated: its header announces {expected} bytes of header and voxels "
            f"{shape}, got {size} bytes",
            path,
        )
    if bad:
        raise InputError(nonfinite_message(bad, n_vox), path)
