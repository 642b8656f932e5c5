"""A real Orthanc PACS with its DICOMweb plugin for the tests (Debian ``orthanc``, ``orthanc-dicomweb``).

``.ci/run`` starts one (``python3 tests/_helpers_orthanc.py start DIR``, standard library only)
and exports ``LIVERSEG_TEST_ORTHANC_URL`` (+ ``_USERNAME``/``_PASSWORD``); otherwise the
``orthanc`` fixture starts its own when the Debian packages are installed, and the tests skip
when they are not (they fail instead under ``CI=true``).

Orthanc 1.10 has no option to bind its HTTP server to one address, so it is locked down
instead: ``RemoteAccessAllowed: false`` (requests from any address but the loopback are refused),
HTTP basic authentication with a random password, no DICOM (DIMSE) port at all, no web explorer,
no WebDAV; the configuration file and the storage live in a temporary folder.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
ENV_URL, ENV_USER, ENV_PASSWORD = (
    "LIVERSEG_TEST_ORTHANC_URL",
    "LIVERSEG_TEST_ORTHANC_USERNAME",
    "LIVERSEG_TEST_ORTHANC_PASSWORD",
)


@dataclass
class OrthancServer:
    """A running Orthanc: its HTTP root (``http://127.0.0.1:PORT``), credentials and process."""

    root: str
    username: str
    password: str
    process: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def dicomweb(self) -> str:
        return self.root.rstrip("/") + "/dicom-web"

    def env(self) -> dict[str, str]:
        """Environment for ``liverseg pacs`` (credentials never go on the command line)."""
        return {
            **os.environ,
            "LIVERSEG_PACS_URL": self.dicomweb,
            "LIVERSEG_PACS_USERNAME": self.username,
            "LIVERSEG_PACS_PASSWORD": self.password,
        }

    def get(self, path: str) -> Any:
        import requests

        return requests.get(self.root + path, auth=(self.username, self.password), timeout=30)

    def ready(self) -> bool:
        """True when Orthanc answers ``/system`` (standard library only: usable by ``.ci/run``)."""
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        request = urllib.request.Request(self.root + "/system", headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def orthanc_available() -> bool:
    return ORTHANC.is_file() and DICOMWEB_PLUGIN.is_file()


def orthanc_config(folder: Path, port: int, username: str, password: str) -> dict:
    """The test configuration: loopback-only access, authentication, DICOMweb, no DIMSE port."""
    return {
        "Name": "liverseg-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "HttpServerEnabled": True,
        "HttpPort": port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {username: password},
        "DicomServerEnabled": False,
        "OrthancExplorerEnabled": False,
        "WebDavEnabled": False,
        "HttpDescribeErrors": True,
        "ConcurrentJobs": 1,
        "SaveJobs": False,
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Host": f"127.0.0.1:{port}"},
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_orthanc(folder: Path, timeout_s: float = 60.0) -> OrthancServer:
    """Write a configuration into ``folder`` and start Orthanc; returns once it answers."""
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    username, password = "liverseg", secrets.token_urlsafe(16)
    config = folder / "orthanc.json"
    config.write_text(json.dumps(orthanc_config(folder, port, username, password), indent=2))
    config.chmod(0o600)
    log = folder / "orthanc.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(ORTHANC), str(config)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = OrthancServer(f"http://127.0.0.1:{port}", username, password, process, log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {process.returncode}: {log.read_text()[-2000:]}")
        if server.ready():
            return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"Orthanc did not answer within {timeout_s} s: {log.read_text()[-2000:]}")


def server_from_env() -> OrthancServer | None:
    """The Orthanc that ``.ci/run`` started, if its URL is in the environment."""
    url = os.environ.get(ENV_URL)
    if not url:
        return None
    return OrthancServer(url.rstrip("/"), os.environ.get(ENV_USER, ""), os.environ.get(ENV_PASSWORD, ""))


def pacs_client(server: OrthancServer):
    """A :class:`liverseg.pacs.PacsClient` for ``server``."""
    from liverseg.pacs import PacsClient, PacsConfig

    return PacsClient(PacsConfig(server.dicomweb, server.username, server.password, timeout_s=120))


def push_study(
    server: OrthancServer,
    slab,
    folder: Path,
    *,
    localizer: bool = True,
    dose_report: bool = True,
    ct: bool = True,
) -> dict:
    """Write a study into ``folder/<patient>`` and store it into ``server`` (STOW-RS).

    The study holds the CT ``slab`` (series 3), optionally two localizer images (series 1, a
    CT series of its own) and a dose report (SR). Each call uses a new patient id, so tests can
    filter on it. Returns the patient id, study and CT series UIDs and the local CT folder.
    """
    import uuid

    import numpy as np
    import pydicom
    from pydicom.uid import generate_uid

    from _helpers_dicom import ct_slice, non_image, write_volume_as_dicom

    patient = f"LS-{uuid.uuid4().hex[:10]}"
    study = generate_uid()
    root = folder / patient
    root.mkdir(parents=True)
    files: list[Path] = []
    ct_series = None
    if ct:
        write_volume_as_dicom(slab, root / "ct", study_uid=study, patient_id=patient)
        files += sorted((root / "ct").iterdir())
        ct_series = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
    if localizer:
        loc_series, loc_frame = generate_uid(), generate_uid()
        for k in range(2):
            ds = ct_slice(
                np.zeros((32, 32), np.uint16),
                position=(0.0, -100.0 + 5 * k, 0.0),
                orientation=(1, 0, 0, 0, 0, -1),
                series_uid=loc_series,
                study_uid=study,
                for_uid=loc_frame,
                instance=k + 1,
                image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
                series_number=1,
            )
            ds.PatientID = patient
            files.append(root / f"loc{k}.dcm")
            ds.save_as(files[-1], enforce_file_format=True)
    if dose_report:
        ds = non_image(
            "1.2.840.10008.5.1.4.1.1.88.67", series_uid=generate_uid(), study_uid=study, modality="SR"
        )
        ds.PatientID = patient
        files.append(root / "dose.dcm")
        ds.save_as(files[-1], enforce_file_format=True)
    pacs_client(server).store([pydicom.dcmread(f) for f in files], study)
    return {"patient": patient, "study": study, "ct_series": ct_series, "ct_folder": root / "ct"}


def main(argv: list[str]) -> int:
    """``python3 tests/_helpers_orthanc.py start DIR``: start a test Orthanc that outlives this
    script and print the shell ``export`` lines of its URL, credentials and process id."""
    if len(argv) != 2 or argv[0] != "start":
        print("usage: _helpers_orthanc.py start DIR", file=sys.stderr)
        return 2
    if not orthanc_available():
        print(f"Orthanc or its DICOMweb plugin is missing ({ORTHANC}, {DICOMWEB_PLUGIN})", file=sys.stderr)
        return 1
    server = start_orthanc(Path(argv[1]))
    assert server.process is not None
    print(f"export {ENV_URL}={server.root} {ENV_USER}={server.username} {ENV_PASSWORD}={server.password}")
    print(f"export ORTHANC_PID={server.process.pid}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
