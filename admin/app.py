"""The admin's FastAPI application: pages for people under /, a JSON API under /api/v1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from admin import api, pages
from admin.api_reasons import pydantic_reason
from admin.config import AdminConfig
from admin.errors import AdminError, BadRequest, Invalid, NotFound, Refusal
from admin.metrics import AdminMetrics
from admin.queries import audit
from admin.services.oidc_login import provider_for
from admin.translate import reader_of
from admin.web import CSP, SESSION_COOKIE, LoginRequired, render
from center.store.db import create_engine
from i18n.catalogs import catalog
from i18n.languages import Language, choose_language
from i18n.marks import N_
from protocol.clock import now_us
from protocol.metrics_http import start_metrics_server

API_PREFIX = "/api/v1"
ANONYMOUS_POSTS = ("/auth/token",)  # API calls with a body that come before any credential
log = structlog.get_logger("admin")


def create_app(config: AdminConfig) -> FastAPI:
    """The app with its own engine (made now, connected on first use, disposed at shutdown)."""
    engine = create_engine(config.db_url)
    metrics = AdminMetrics()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        listen = config.admin_metrics_listen
        server = await start_metrics_server(metrics.registry, *listen) if listen else None
        try:
            yield
        finally:
            if server is not None:
                server.close()
            await engine.dispose()

    app = FastAPI(
        title="UnitedCron admin API",
        version="1",
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        # No Swagger UI page: it loads its script from a CDN at the admin's own origin. The
        # document itself is served, for any OpenAPI viewer run elsewhere.
        docs_url=None,
        redoc_url=None,
    )
    app.state.config = config
    app.state.engine = engine
    app.state.metrics = metrics
    app.state.oidc = provider_for(config)  # None unless admin_oidc_issuer is set
    app.include_router(api.router, prefix=API_PREFIX)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.add_middleware(
        BodyGuard, max_bytes=config.admin_max_body_bytes, language=config.admin_language
    )
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(AdminError, _admin_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(LoginRequired, _login_required)  # type: ignore[arg-type]
    return app


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(API_PREFIX)


class SecurityHeaders:
    """Headers on every response; a plain ASGI middleware, so streams (SSE) pass untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                headers.setdefault("Content-Security-Policy", CSP)
                headers.setdefault("X-Frame-Options", "DENY")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _error_response(request: Request, exc: AdminError) -> Response:
    if _is_api(request):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        retry = getattr(exc, "retry_after_s", None)
        if retry is not None:
            headers["Retry-After"] = str(retry)
        body = exc.as_json()
        words = reader_of(request).words
        if words.language != Language.EN:  # scripts and support may want the English too
            body["error"] |= {"reason": words.reason(exc.reason), "reason_en": exc.reason}
        return JSONResponse(body, status_code=exc.status, headers=headers)
    return render(request, "error.html", None, {"error": exc}, status_code=exc.status)


async def _admin_error(request: Request, exc: AdminError) -> Response:
    if exc.refusal is not None:
        await _audit_refusal(request, exc.refusal, exc.status)
    return _error_response(request, exc)


async def _audit_refusal(request: Request, refusal: Refusal, status: int) -> None:
    """One `permission.refused` row per refused request, in its own transaction (the request's
    own has rolled back); a store that fails here must not turn the 403 or 404 into a 500."""
    ids = [str(value) for value in request.path_params.values()]
    try:
        async with request.app.state.engine.begin() as conn:
            await audit.record(
                conn,
                at_us=now_us(),
                user_id=refusal.user_id,
                username=refusal.username,
                action="permission.refused",
                object_type=refusal.object_type,
                object_id=ids[0] if ids else "",
                gid=refusal.gid,
                after={
                    "action": refusal.action,
                    "method": request.method,
                    "path": request.url.path[:200],
                    "status": status,
                },
                client=refusal.client,
            )
    except SQLAlchemyError as exc:
        log.warning("admin.audit_failed", reason=str(exc).splitlines()[0][:300])


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    """Pydantic's errors as one `{"error": {"field", "reason"}}`: the first problem found, in
    our own words (admin.api_reasons)."""
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "bad request", "type": ""}
    where = [str(p) for p in first.get("loc", ())]
    if first.get("type") == "json_invalid":
        return _error_response(request, BadRequest(pydantic_reason(first)))
    if where[:1] == ["path"]:
        return _error_response(request, NotFound("no such object"))
    if where == ["body"]:
        return _error_response(request, BadRequest("send a JSON object as the body"))
    field = ".".join(where[1:2]) or None
    return _error_response(request, Invalid(field or "body", pydantic_reason(first)))


async def _http_error(request: Request, exc: HTTPException) -> Response:
    error = NotFound("no such page") if exc.status_code == 404 else AdminError(str(exc.detail))
    error.status = exc.status_code
    return _error_response(request, error)


async def _login_required(request: Request, _exc: LoginRequired) -> Response:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


class BodyGuard:
    """Refuses, before reading them, request bodies above `max_bytes` (413), and API requests
    with a body that carry no credential at all (401): nobody unauthenticated can make the
    admin parse a large body. Plain ASGI: the rest of the app never sees such a request."""

    def __init__(self, app: ASGIApp, max_bytes: int, language: Language = Language.EN) -> None:
        self.app, self.max_bytes, self.language = app, max_bytes, language

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        # no user is known yet: the browser's choice, else the admin's default
        language = choose_language("", headers.get("accept-language", ""), self.language)
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await _plain(send, 413, N_(f"request body above {self.max_bytes} bytes"), language)
            return
        path = str(scope.get("path", ""))
        anonymous = "authorization" not in headers and SESSION_COOKIE not in headers.get(
            "cookie", ""
        )
        if path.startswith(API_PREFIX) and anonymous and not path.endswith(ANONYMOUS_POSTS):
            await _plain(send, 401, N_("authentication required"), language)
            return
        await self.app(scope, self._capped(receive), send)

    def _capped(self, receive: Receive) -> Receive:
        seen = 0

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # chunked: no length was announced
                raise HTTPException(413, N_(f"request body above {self.max_bytes} bytes"))
            return message

        return capped


async def _plain(send: Send, status: int, text: str, language: Language) -> None:
    """An error answer in the API's own shape, sent before the request's body is read."""
    error = {"field": None, "reason": text}
    if language != Language.EN:
        error |= {"reason": catalog(language).reason(text), "reason_en": text}
    body = json.dumps({"error": error}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
