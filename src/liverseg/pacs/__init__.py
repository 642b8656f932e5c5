"""Talking to a PACS over DICOMweb (QIDO-RS, WADO-RS, STOW-RS) with ``dicomweb-client``.

* :func:`load_pacs_config` / :class:`PacsConfig`: the server URL and credentials (from the
  environment or a config file, never the command line);
* :class:`PacsClient`: find studies and series, pull a series, store SEG + SR back;
* :func:`segment_from_pacs`: pull a study's (or a series') CT, run the real ``run_segment``,
  store the DICOM-SEG and the TID 1500 SR into the same study;
* :func:`watch`: poll for new CT series and process each once (resumable ledger, bounded
  retries).

Layering: pacs sits above inference (it calls ``run_segment``) and below the service and CLI.
"""

from liverseg.extras import require

require("pacs", "the PACS client (liverseg.pacs)")  # before the imports: one line naming the extra

from liverseg.pacs.client import PacsClient  # noqa: E402
from liverseg.pacs.config import PacsConfig, load_pacs_config  # noqa: E402
from liverseg.pacs.segment import (  # noqa: E402
    NothingToSegmentError,
    PacsResult,
    choose_series,
    segment_from_pacs,
)
from liverseg.pacs.watch import Ledger, WatchSummary, watch  # noqa: E402

__all__ = [
    "Ledger",
    "NothingToSegmentError",
    "PacsClient",
    "PacsConfig",
    "PacsResult",
    "WatchSummary",
    "choose_series",
    "load_pacs_config",
    "segment_from_pacs",
    "watch",
]
