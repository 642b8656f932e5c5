"""HTML pages (server-rendered shells; the data comes from the JSON API via static JS)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from liverseg.service.db import Study
from liverseg.service.deps import Auth, current_user, owned_study, require_admin

router = APIRouter(include_in_schema=False)

ADMIN_PAGES = {
    "models": "Model registry",
    "monitoring": "Monitoring",
    "problems": "Problem reports",
    "audit": "Audit log",
}


def _page(request: Request, template: str, auth: Auth, **context: object) -> Response:
    return request.app.state.templates.TemplateResponse(
        request,
        template,
        {"user": auth.user, "csrf": auth.session.csrf_token, "admin_pages": ADMIN_PAGES, **context},
    )


@router.get("/", response_class=HTMLResponse)
def studies_page(request: Request, auth: Auth = Depends(current_user)) -> Response:
    pacs = request.app.state.config.pacs
    return _page(
        request, "studies.html", auth, title="Studies", pacs=pacs.describe() if pacs is not None else None
    )


@router.get("/studies/{study_id}", response_class=HTMLResponse)
def study_page(
    request: Request, study: Study = Depends(owned_study), auth: Auth = Depends(current_user)
) -> Response:
    return _page(request, "study.html", auth, title=study.label, study=study)


@router.get("/admin/{page}", response_class=HTMLResponse)
def admin_page(page: str, request: Request, auth: Auth = Depends(require_admin)) -> Response:
    if page not in ADMIN_PAGES:
        raise HTTPException(status_code=404, detail=f"no admin page {page!r}")
    return _page(request, f"admin_{page}.html", auth, title=ADMIN_PAGES[page], page=page)
