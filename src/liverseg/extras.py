"""The optional parts of liverseg (pip extras of ``pyproject.toml``) and the check that names a
missing one.

``pip install liverseg`` installs what segmentation needs (reading CT and DICOM, the models, the
reports, DICOM SEG/SR, cohorts on this machine). The rest comes with an extra:

* ``service``: the web application and its database (``liverseg serve|users|db``), PACS included;
* ``pacs``: the DICOMweb client (``liverseg pacs``);
* ``train``: training and experiments (MONAI, TensorBoard, Optuna);
* ``cluster``: cohorts on a Ray cluster (``--engine ray``) and ``cohort.parquet``.

A module that needs an extra calls :func:`require` before importing it, so that using it without
the extra fails with one line naming the extra (never a silent fallback, never a bare
``No module named ...``). ``tests/test_dependencies.py`` checks this table against pyproject.toml.
"""

from __future__ import annotations

import importlib.util

from liverseg.errors import MissingExtraError

__all__ = ["EXTRAS", "require"]

#: extra -> the import names of the packages it adds that liverseg imports
EXTRAS: dict[str, tuple[str, ...]] = {
    "service": (
        "fastapi",
        "starlette",
        "uvicorn",
        "sqlalchemy",
        "alembic",
        "argon2",
        "python_multipart",
        "jinja2",
        "dicomweb_client",
        "requests",
    ),
    "pacs": ("dicomweb_client", "requests"),
    "train": ("monai", "tensorboard", "optuna"),
    "cluster": ("ray", "pyarrow"),
}


def require(extra: str, feature: str) -> None:
    """Raise :class:`MissingExtraError` naming ``pip install 'liverseg[extra]'`` when a package of
    ``extra`` is not installed; ``feature`` says what needed it (a command or a module)."""
    missing = [name for name in EXTRAS[extra] if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtraError(
            f"{feature} needs the optional dependencies of liverseg[{extra}] "
            f"({', '.join(missing)} not installed): pip install 'liverseg[{extra}]'"
        )
