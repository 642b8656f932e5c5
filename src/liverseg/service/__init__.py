"""liverseg.service: the web application (FastAPI + SQLAlchemy) and its durable job workers.

Run it with ``liverseg serve [--host 127.0.0.1] [--port 8000] [--data-dir DIR] [--db URL]
[--workers N]``; create accounts first with ``liverseg users add NAME --role admin`` (there is
no default account or password).

Modules:
    config       ``ServiceConfig`` / ``UploadLimits`` (frozen dataclasses; no environment variables)
    db           SQLAlchemy models, ``Database`` (SQLite WAL: request sessions read first and take the
                 write lock at their first write; workers BEGIN IMMEDIATE; or PostgreSQL)
    auth         argon2 passwords, server-side sessions, CSRF tokens, login throttling, audit
    deps         FastAPI dependencies: authentication + CSRF on every state change, roles,
                 object-level access (a clinician's study ids of others answer 404)
    storage      data-dir layout (0700/0600), durable uploads via incoming/, header-first NIfTI /
                 DICOM-zip checks, orphan sweep
    middleware   security headers, per-route body limits, auth before bodies, commit before response
    errors       error responses without server paths, exception names or echoed input
    jobs         durable queue (lease + heartbeat, SKIP LOCKED on PostgreSQL), ``Worker``,
                 ``run_job_segmentation`` (the one call into ``liverseg.inference.run_segment``)
    worker       worker process entry (``python -m liverseg.service.worker``)
    volumes      study volume reading and the viewer cache (CT/labels NIfTI in RAS order, borders)
    viewer       per-process cache of opened studies, lesion geometry for the NiiVue viewer
    identity     study identity from DICOM or the uploader, pseudonyms (de-identification)
    progress     one progress bar: stage names, fraction, time left, queue position
    lifecycle    study deletion, retention, re-run
    registry     model registry (shipped catalog models, registered cascades, activation checks)
    gate         validation gate of a model on the bundled sample (subprocess)
    monitoring   jobs per day, stage latency p50/p95, failures, queue, flagged share per model
    compare      follow-up vs baseline (``liverseg.reporting.compare_reports``)
    export       confirmed corrections -> prepared dataset (``liverseg data export-corrections``)
    app, routes_*  the application and its routes; templates/ and static/ (no CDN, no build step;
                 static/vendor/ holds the pinned NiiVue bundle, see scripts/update_viewer_vendor.sh)

Deployment notes:
    * Behind a TLS-terminating reverse proxy, start with ``--forwarded-allow-ips <proxy ip>`` and
      ``--allowed-hosts <public name>`` and have the proxy send ``X-Forwarded-Proto: https`` and
      ``X-Forwarded-For``: cookies then get ``Secure`` and throttling sees client addresses
      (``--secure-cookies`` forces ``Secure``). Without it those headers are trusted from nobody.
    * PostgreSQL: ``--db postgresql+psycopg://USER:PASSWORD@HOST/DB`` (``pip install
      'liverseg[service]'``, which brings psycopg); the same URL goes to ``liverseg users``,
      ``liverseg db`` and ``export-corrections``.
    * Upgrading liverseg: back up the database, then ``liverseg db upgrade`` (docs/service.md).
    * Everything (database file, uploads, results, registered models) lives in ``--data-dir``.

Needs the ``service`` extra (``pip install 'liverseg[service]'``): importing this package without
it raises :class:`liverseg.errors.MissingExtraError` naming the extra.
"""

from liverseg.extras import require

require("service", "the web application (liverseg.service)")
