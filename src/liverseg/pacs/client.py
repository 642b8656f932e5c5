"""A small DICOMweb client for liverseg's needs, on top of ``dicomweb-client``.

QIDO-RS searches (studies, series), WADO-RS metadata and instance retrieval (streamed to disk one
instance at a time), STOW-RS storage with the server's per-instance answer checked. Every
transport or HTTP failure becomes one :class:`~liverseg.errors.PacsError` line naming the
request and the server's answer (never the credentials).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pydicom
import requests
from dicomweb_client import DICOMwebClient

from liverseg.errors import PacsError
from liverseg.pacs.config import PacsConfig
from liverseg.utils import atomic_path

__all__ = ["PacsClient", "flatten"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: study-level attributes shown by ``liverseg pacs find`` and the web app
STUDY_FIELDS = (
    "StudyInstanceUID",
    "PatientID",
    "PatientName",
    "StudyDate",
    "StudyDescription",
    "AccessionNumber",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
SERIES_FIELDS = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SeriesNumber",
    "SeriesDescription",
    "Modality",
    "NumberOfSeriesRelatedInstances",
)


class _BearerAuth(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r


def flatten(item: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """A DICOM JSON object -> ``{keyword: plain value}`` for ``fields`` (missing -> None)."""
    ds = pydicom.Dataset.from_json(item)
    out: dict[str, Any] = {}
    for name in fields:
        value = ds.get(name)
        if value is None or value == "":
            out[name] = None
        elif isinstance(value, pydicom.multival.MultiValue):
            out[name] = [str(v) for v in value]
        elif isinstance(value, int | float):
            out[name] = value
        else:
            text = str(value)
            out[name] = int(text) if name.startswith("NumberOf") and text.isdigit() else text
    if "SeriesNumber" in out and out["SeriesNumber"] is not None:
        out["SeriesNumber"] = int(out["SeriesNumber"])
    return out


class PacsClient:
    """DICOMweb access to one server (see :class:`~liverseg.pacs.config.PacsConfig`).

    Args:
        config: URL, credentials, TLS and timeout.
        http_attempts: tries per request when the server cannot be reached or answers 408, 429,
            503 or 504, with exponential back-off (dicomweb-client's policy: 5 tries wait up to
            ~30 s in all; the web app uses 2 so that a dead PACS answers a page within seconds).
    """

    def __init__(self, config: PacsConfig, *, http_attempts: int = 5) -> None:
        self.config = config
        session = requests.Session()
        if config.token:
            session.auth = _BearerAuth(config.token)
        elif config.username:
            session.auth = (config.username, config.password or "")
        session.verify = config.ca_bundle or config.verify_tls
        self._web = DICOMwebClient(url=config.url, session=session, timeout=config.timeout_s)
        self._web.set_http_retry_params(max_attempts=max(1, http_attempts), wait_exponential_multiplier=500)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            reason = exc.response.reason if exc.response is not None else ""
            hint = " (check the PACS credentials)" if status in (401, 403) else ""
            raise PacsError(f"{self.config.url}: {what} failed: HTTP {status} {reason}{hint}") from exc
        except requests.RequestException as exc:
            # query strings may hold search values (patient ids): never put them into messages
            reason = re.sub(r"\?[^\s'\")]*", "?...", str(exc))
            raise PacsError(f"{self.config.url}: {what} failed: {type(exc).__name__}: {reason}") from exc

    # ------------------------------------------------------------------ QIDO-RS
    def find_studies(
        self, filters: dict[str, str] | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Studies matching ``filters`` (DICOM keywords, e.g. ``PatientID``, ``StudyDate``)."""
        items = self._call(
            "QIDO-RS study search",
            lambda: self._web.search_for_studies(
                search_filters=dict(filters or {}),
                fields=list(STUDY_FIELDS),
                limit=limit,
                get_remaining=limit is None,
            ),
        )
        return [flatten(i, STUDY_FIELDS) for i in items]

    def find_series(
        self,
        study_uid: str | None = None,
        modality: str | None = None,
        limit: int | None = None,
        filters: dict[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Series of one study (or of the whole server), optionally of one modality and
        matching QIDO-RS ``filters`` (DICOM keywords, e.g. ``PatientID``)."""
        filters = {**(filters or {}), **({"Modality": modality} if modality else {})}
        items = self._call(
            "QIDO-RS series search",
            lambda: self._web.search_for_series(
                study_instance_uid=study_uid,
                search_filters=filters,
                fields=list(SERIES_FIELDS),
                limit=limit,
                get_remaining=limit is None,
            ),
        )
        return [flatten(i, SERIES_FIELDS) for i in items]

    # ------------------------------------------------------------------ WADO-RS
    def study_metadata(self, study_uid: str) -> list[pydicom.Dataset]:
        """Headers (no pixel data) of every instance of a study."""
        items = self._call("WADO-RS study metadata", lambda: self._web.retrieve_study_metadata(study_uid))
        # bulk data (pixels) is only referenced by URI in metadata: leave it out of the headers
        return [
            pydicom.Dataset.from_json({k: v for k, v in i.items() if "BulkDataURI" not in v}) for i in items
        ]

    def retrieve_series(self, study_uid: str, series_uid: str, folder: Path) -> list[Path]:
        """Save every instance of a series into ``folder`` as ``<SOPInstanceUID>.dcm`` (one at a time)."""
        folder.mkdir(parents=True, exist_ok=True)
        paths: list[Path] = []

        def stream() -> Iterator[pydicom.Dataset]:
            return self._web.iter_series(study_uid, series_uid)

        def save_all() -> None:
            for ds in stream():
                path = folder / f"{ds.SOPInstanceUID}.dcm"
                with atomic_path(path) as tmp:
                    ds.save_as(tmp, enforce_file_format=True)
                paths.append(path)

        self._call(f"WADO-RS retrieval of series {series_uid}", save_all)
        if not paths:
            raise PacsError(f"{self.config.url}: series {series_uid} of study {study_uid} has no instances")
        log.info("retrieved %d instance(s) of series %s", len(paths), series_uid)
        return paths

    # ------------------------------------------------------------------ STOW-RS
    def store(self, datasets: Sequence[pydicom.Dataset], study_uid: str) -> None:
        """Store instances into ``study_uid``; raise unless the server accepted every one."""
        answer = self._call(
            "STOW-RS store", lambda: self._web.store_instances(list(datasets), study_instance_uid=study_uid)
        )
        failed = answer.get("FailedSOPSequence") if answer is not None else None
        if failed:
            reasons = ", ".join(
                f"{i.get('ReferencedSOPInstanceUID', '?')}: {i.get('FailureReason', '?')}" for i in failed
            )
            raise PacsError(f"{self.config.url}: STOW-RS refused {len(failed)} instance(s) ({reasons})")
        stored = (
            {str(i.ReferencedSOPInstanceUID) for i in (answer.get("ReferencedSOPSequence") or [])}
            if answer
            else set()
        )
        missing = [str(ds.SOPInstanceUID) for ds in datasets if str(ds.SOPInstanceUID) not in stored]
        if missing:
            raise PacsError(f"{self.config.url}: STOW-RS did not confirm instance(s) {', '.join(missing)}")
        log.info("stored %d instance(s) into study %s", len(datasets), study_uid)
