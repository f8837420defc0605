"""The console's page and its JSON API. Every write goes through `ConfigFolder` and every change
to the running kiosk through the SIGHUP reload (`LiveState.reload`), except the A/V trim, which
the running passthrough takes live (and which is also saved to the config file)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from firmware_app.config import MAX_CONFIG_BYTES, Settings
from firmware_app.errors import VentriloquistError
from firmware_app.platform.logs import AUDIT
from firmware_app.sinks.provenance import SnapshotSigner
from firmware_app.web.console.configfile import ConfigFolder
from firmware_app.web.console.docs import README, readme_section
from firmware_app.web.console.portrait import check_portrait
from firmware_app.web.console.security import Policy
from firmware_app.web.console.status import History, RecentLog, snapshot

if TYPE_CHECKING:
    from firmware_app.web.state import LiveState

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
PREVIEW_WIDTH = 640  # px: enough to see the screen, cheap to encode a few times a second
SNAPSHOT_QUALITY = 92  # a still to keep: full size, little loss
DRAIN_FACTOR = 4  # a refused upload up to this many times the limit is read to its end, so its refusal arrives
DRAINED_AT_LEAST = 64 << 20  # bytes: a small limit's refusal still arrives for a body this long
JSON_LIMIT = MAX_CONFIG_BYTES * 2 + 4096  # the largest config, every character escaped, and the JSON around it
CHECK_WITHIN_S = 30.0  # a Check or Apply that takes longer is answered (nothing changed) while it finishes
REDACTED = "<console.token: unchanged>"  # stands for the token in the text the page sees


def refused(exc: VentriloquistError, status: int = 422) -> JSONResponse:
    return JSONResponse({"ok": False, "error": str(exc)}, status_code=status)


def console_routes(settings: Settings, state: LiveState, policy: Policy) -> list[BaseRoute]:
    folder = ConfigFolder(state.config_path)
    history = History(state)
    history.start()
    errors = RecentLog(policy.token, REDACTED).attach()
    started_at = time.monotonic()
    snapshots = SnapshotSigner()
    upload_limit = int(settings.console.upload_max_mb * 1024 * 1024)
    page = (STATIC / "index.html").read_text(encoding="utf-8").replace("{{csrf}}", policy.csrf)

    def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page, headers={"cache-control": "no-store"})

    def status(request: Request) -> JSONResponse:
        return JSONResponse(snapshot(state, history, errors, started_at), headers={"cache-control": "no-store"})

    def shown_frame() -> np.ndarray | JSONResponse:
        """The frame on the screen now (its disclosure mark on it); off (404) unless console.preview: true."""
        image = state.metrics.screen.image
        if not state.settings.console.preview:
            return JSONResponse({"error": "the preview is off (console.preview: false)"}, status_code=404)
        if image is None:
            return JSONResponse({"error": "no frame shown yet"}, status_code=503)
        return image

    def preview(request: Request) -> Response:
        """The frame on the screen now, small, as JPEG."""
        image = shown_frame()
        if isinstance(image, JSONResponse):
            return image
        scale = PREVIEW_WIDTH / image.shape[1]
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
        ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])
        return Response(jpeg.tobytes(), media_type="image/jpeg", headers={"cache-control": "no-store"})

    def snapshot_jpeg(request: Request) -> Response:
        """The frame on the screen now, full size, as a JPEG download: encoded in memory, never stored."""
        image = shown_frame()
        if isinstance(image, JSONResponse):
            return image
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, SNAPSHOT_QUALITY])
        name = time.strftime("ventriloquist-%Y%m%d-%H%M%S.jpg", time.gmtime())
        try:
            data = snapshots.credentialed(jpeg.tobytes(), name, state.settings)
        except VentriloquistError as exc:  # never an unmarked still instead
            return refused(exc, status=503)
        return Response(data, media_type="image/jpeg", headers=download(name))

    def docs(request: Request) -> Response:
        """A section of the README (the status line links to Provenance), as text."""
        text = readme_section(request.path_params["name"])
        if text is None:
            reason = f"no section {request.path_params['name']!r} in {README} (a wheel install has no README)"
            return Response(reason, status_code=404, media_type="text/plain; charset=utf-8")
        return Response(text, media_type="text/plain; charset=utf-8")

    def log_lines(request: Request) -> JSONResponse:
        return JSONResponse({"lines": list(errors.lines)}, headers={"cache-control": "no-store"})

    def log_text(request: Request) -> Response:
        name = time.strftime("ventriloquist-log-%Y%m%d-%H%M%S.txt", time.gmtime())
        return Response(errors.text(), media_type="text/plain; charset=utf-8", headers=download(name))

    def config(request: Request) -> JSONResponse:
        """The file as it is, its console.token replaced by REDACTED (the token is never sent)."""
        text = folder.read()
        if policy.token:
            text = text.replace(policy.token, REDACTED)
        return JSONResponse(
            {"path": str(folder.path) if folder.path else None, "text": text}, headers={"cache-control": "no-store"}
        )

    async def edited_text(request: Request) -> str | JSONResponse:
        """The editor's text from a JSON body (bounded), the token put back where it was redacted."""
        body = await _json(request)
        if isinstance(body, JSONResponse):
            return body
        text = str(body.get("text", ""))
        return text.replace(REDACTED, policy.token) if policy.token else text

    async def proved(text: str) -> tuple[Settings, list[str]] | JSONResponse:
        """`folder.prove` on a worker thread, within CHECK_WITHIN_S: the event loop (and /healthz)
        never waits on a config's files."""
        try:
            return await asyncio.wait_for(run_in_threadpool(folder.prove, text), CHECK_WITHIN_S)
        except TimeoutError:
            return JSONResponse(
                {"ok": False, "error": f"the check took longer than {CHECK_WITHIN_S:.0f} s; nothing was changed"},
                status_code=503,
            )
        except VentriloquistError as exc:
            return refused(exc)

    async def check(request: Request) -> JSONResponse:
        text = await edited_text(request)
        if isinstance(text, JSONResponse):
            return text
        result = await proved(text)
        if isinstance(result, JSONResponse):
            return result
        parsed, warnings = result
        summary = f"OK (mode {parsed.mode}, audio {parsed.sources.audio}, output {parsed.output.uri})"
        return JSONResponse({"ok": True, "summary": summary + "".join(f"; {w}" for w in warnings)})

    async def apply(request: Request) -> JSONResponse:
        text = await edited_text(request)
        if isinstance(text, JSONResponse):
            return text
        return await keep(text, "config")

    async def keep(text: str, what: str) -> JSONResponse:
        """Prove `text`, then write it as the config file and reload: Apply and a history restore."""
        result = await proved(text)
        if isinstance(result, JSONResponse):
            log.warning("console: %s not applied, the running one stays: %s", what, result.body.decode())
            return result
        try:
            folder.store(folder.path.name, text.encode())
        except VentriloquistError as exc:
            return refused(exc)
        log.info(
            "console: %s written to %s (previous kept as %s.bak); reloading",
            what, folder.path, folder.path.name, extra={AUDIT: True},
        )  # fmt: skip
        state.reload()
        return JSONResponse(
            {
                "ok": True,
                "generation": state.generation,
                "backup": f"{folder.path}.bak",
                "note": next_start_note(state.settings, result[0]),
            }
        )

    async def diff(request: Request) -> JSONResponse:
        """What Apply would change in the running file, as a unified diff (the token never in it)."""
        body = await _json(request)
        if isinstance(body, JSONResponse):
            return body
        return JSONResponse({"diff": folder.diff(str(body.get("text", "")), policy.token, REDACTED)})

    def history_list(request: Request) -> JSONResponse:
        entries = folder.history.entries() if folder.history is not None else []
        return JSONResponse({"entries": entries}, headers={"cache-control": "no-store"})

    def history_entry(request: Request) -> JSONResponse:
        """One applied file (its token redacted) and its diff from the running one."""
        try:
            text = folder.applied(request.path_params["entry"])
        except VentriloquistError as exc:
            return refused(exc, 404)
        shown = text.replace(policy.token, REDACTED) if policy.token else text
        return JSONResponse({"text": shown, "diff": folder.diff(text, policy.token, REDACTED)})

    async def restore(request: Request) -> JSONResponse:
        """An earlier applied file back, through the same proof as an Apply."""
        body = await _json(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            text = folder.applied(str(body.get("id", "")))
        except VentriloquistError as exc:
            return refused(exc, 404)
        return await keep(text, f"config from the history ({body.get('id')})")

    async def restart(request: Request) -> JSONResponse:
        """Check, then restart: the file on disk proved as SIGHUP proves it, then the pipeline
        restarted on it (the SIGHUP reload); a file that fails is not reloaded and says why."""
        result = await proved(folder.read())
        if isinstance(result, JSONResponse):
            log.warning("console: restart refused, the file on disk does not prove: %s", result.body.decode())
            return result
        log.info(
            "console: %s proved; restarting the pipeline on it", folder.path or "the defaults", extra={AUDIT: True}
        )
        state.reload()
        return JSONResponse({"ok": True, "summary": f"proved; restarting (pipeline {state.generation} now)"})

    async def trim(request: Request) -> JSONResponse:
        """Live while the slider moves; `save` (when it is let go) also writes it to the config."""
        body = await _json(request)
        if isinstance(body, JSONResponse):
            return body
        try:
            ms = float(body.get("ms"))
        except (TypeError, ValueError):
            return JSONResponse({"ok": False, "error": "ms must be a number"}, status_code=422)
        passthrough = state.pipeline.passthrough if state.pipeline is not None else None
        if passthrough is None:  # answered before anything is written
            return JSONResponse(
                {"ok": False, "error": "audio.passthrough is off: there is no delay to trim"}, status_code=409
            )
        try:
            text = folder.with_keys({"audio.passthrough_trim_ms": ms})
            folder.check(text)  # out of range is the config's own error, with its limits
            if body.get("save"):
                folder.save(text)  # no new .bak: that stays the file before the last Apply
        except VentriloquistError as exc:
            return refused(exc)
        passthrough.set_trim(ms / 1000)
        if body.get("save"):
            log.info("console: passthrough trim %.0f ms, saved to %s", ms, folder.path, extra={AUDIT: True})
        return JSONResponse({"ok": True, "trim_ms": ms, "saved": bool(body.get("save"))})

    async def portrait(request: Request) -> JSONResponse:
        data = await _read_limited(request, upload_limit)
        if data is None:
            limit_mb = settings.console.upload_max_mb
            return too_large(f"the upload is larger than console.upload_max_mb ({limit_mb:g} MiB)")
        try:
            checked = await run_in_threadpool(
                check_portrait, data, state.settings.tracker.model_path, state.settings.disclosure
            )
            stored, _ = await run_in_threadpool(folder.replace_portrait, f"portrait.{checked.extension}", data)
        except VentriloquistError as exc:
            log.warning("console: upload refused, the portrait stays: %s", exc.cause)
            return refused(exc)
        log.info("console: new portrait %s (%s); reloading", stored, checked.describe(), extra={AUDIT: True})
        state.reload()
        note = "" if state.settings.mode == "puppet" else " (shown in puppet mode: set mode: puppet)"
        return JSONResponse({"ok": True, "path": str(stored), "summary": checked.describe() + note})

    api: list[tuple[str, Callable[[Request], Awaitable[Response] | Response], list[str]]] = [
        ("/api/status", status, ["GET"]),
        ("/api/preview.jpg", preview, ["GET"]),
        ("/api/config", config, ["GET"]),
        ("/api/config/check", check, ["POST"]),
        ("/api/config/apply", apply, ["POST"]),
        ("/api/config/diff", diff, ["POST"]),
        ("/api/config/history", history_list, ["GET"]),
        ("/api/config/history/{entry}", history_entry, ["GET"]),
        ("/api/config/restore", restore, ["POST"]),
        ("/api/restart", restart, ["POST"]),
        ("/api/snapshot.jpg", snapshot_jpeg, ["GET"]),
        ("/api/log", log_lines, ["GET"]),
        ("/docs/{name}", docs, ["GET"]),
        ("/api/log.txt", log_text, ["GET"]),
        ("/api/trim", trim, ["POST"]),
        ("/api/portrait", portrait, ["POST"]),
    ]
    return [
        Route("/", index),
        *(Route(path, endpoint, methods=methods) for path, endpoint, methods in api),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]


def download(name: str) -> dict[str, str]:
    return {"cache-control": "no-store", "content-disposition": f'attachment; filename="{name}"'}


def too_large(reason: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": reason}, status_code=413)


def next_start_note(running: Settings, applied: Settings) -> str:
    """What an Apply cannot change at once: the server's own sections are read at start-up."""
    changed = [name for name in ("health", "console") if getattr(running, name) != getattr(applied, name)]
    if not changed:
        return ""
    return f"{' and '.join(f'{name}.*' for name in changed)} take effect at the next start (systemctl restart)"


async def _json(request: Request) -> dict | JSONResponse:
    """A JSON object body of at most JSON_LIMIT bytes; a longer one is 413, one too deeply nested
    to parse 400, anything else that is not an object an empty one."""
    data = await _read_limited(request, JSON_LIMIT)
    if data is None:
        return too_large(f"the request is larger than {JSON_LIMIT // 1024} KiB")
    try:
        body = json.loads(data) if data else {}
    except RecursionError:
        return JSONResponse({"ok": False, "error": "the request's JSON is nested too deeply"}, status_code=400)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is longer than `limit` (it is never held whole).

    A refused body is still read to its end (and dropped) when it is no more than a few times the
    limit: answering while the client is still sending makes the server close a socket with unread
    data, which resets the connection, and the browser then shows "connection reset" instead of the
    refusal's reason."""
    drained = max(DRAIN_FACTOR * limit, DRAINED_AT_LEAST)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > drained:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > drained:
            return None
        if size > limit:
            chunks.clear()
            continue
        chunks.append(chunk)
    return None if size > limit else b"".join(chunks)
