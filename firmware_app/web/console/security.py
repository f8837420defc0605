"""Who may use the console and `/metrics`, checked before any route runs.

- Bound to 127.0.0.1 or ::1 (the default) without a token: only the loopback host names are
  answered (a web page elsewhere cannot reach it by pointing its own name at 127.0.0.1: DNS
  rebinding).
- Bound anywhere else, or whenever `console.token` is set: every request carries the token, as
  `Authorization: Bearer …` (Prometheus, curl) or the cookie the login form sets; else 401.
- Requests that change something (POST) must come from the page itself: the browser's Origin
  (or Referer) names this server, and the page's CSRF token is in `X-CSRF-Token`.
- Signing in with the token gives a session: a random id, kept on the server (never derived from
  the token), that expires after SESSION_S and ends at sign-out (`POST /logout`). Failed sign-ins
  are logged and, past FAILURES_ALLOWED a minute from one address, refused for that minute.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections import deque
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from firmware_app.config import LOOPBACK, Settings

log = logging.getLogger(__name__)

COOKIE = "ventriloquist_console"
LOGOUT_PATH = "/logout"
SESSION_S = 12 * 3600  # a signed-in browser signs in again after this
MAX_SESSIONS = 64  # the oldest session ends when a new one would pass this
FAILURES_ALLOWED = 5  # failed sign-ins from one address per THROTTLE_S before it must wait
THROTTLE_S = 60.0
CSRF_HEADER = "x-csrf-token"
LOGIN_PATH = "/login"
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
PROCESS_CSRF = secrets.token_urlsafe(32)  # one per process: a page stays valid when the server restarts in it
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),  # nobody frames the page to trick a click on a slider
    (b"referrer-policy", b"same-origin"),  # (no-referrer would make a form's Origin "null")
    (b"cross-origin-resource-policy", b"same-origin"),  # no other site embeds the preview or reads the API
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"),
]  # fmt: skip

LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Ventriloquist console: sign in</title>
<link rel="stylesheet" href="/static/console.css"></head><body class="login"><main><h1>Ventriloquist console</h1>
<p>This console is reachable beyond the appliance, so it needs the token from <code>console.token</code>.</p>
<form method="post" action="/login"><label>Token <input type="password" name="token" id="token" autofocus></label>
<button type="submit" id="sign-in">Sign in</button></form><p class="error">{message}</p></main></body></html>"""


class Policy:
    """The rules for one server, from its settings; `csrf` is new each process (the page embeds it)."""

    def __init__(self, settings: Settings) -> None:
        self.token = settings.console.token
        self.bind = settings.health.bind
        self.token_required = bool(self.token) or self.bind not in LOOPBACK
        self.csrf = PROCESS_CSRF
        self.sessions: dict[str, float] = {}  # session id -> time.monotonic() it expires at
        self.failures: dict[str, deque[float]] = {}  # client address -> times of its recent failed sign-ins
        self.secure_cookie = False  # plain HTTP on the appliance; an HTTPS proxy in front may set it

    def host_allowed(self, host: str) -> bool:
        if self.token_required:  # the token is what keeps others out; any name may reach it
            return True
        name = urlsplit(f"//{host}").hostname or ""
        return name in LOOPBACK_NAMES or name == self.bind

    def token_matches(self, offered: str | None) -> bool:
        return bool(offered) and hmac.compare_digest(offered.encode(), self.token.encode())

    def authenticated(self, headers: Headers) -> bool:
        if not self.token_required:
            return True
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_matches(credentials.strip()):
            return True
        session = self.session_of(headers)
        return session is not None and self.sessions.get(session, 0.0) > time.monotonic()

    @staticmethod
    def session_of(headers: Headers) -> str | None:
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # noqa: BLE001 - a malformed cookie header is no session
            return None
        return cookie[COOKIE].value if COOKIE in cookie else None

    def new_session(self) -> str:
        now = time.monotonic()
        self.sessions = {sid: until for sid, until in self.sessions.items() if until > now}
        while len(self.sessions) >= MAX_SESSIONS:
            self.sessions.pop(min(self.sessions, key=self.sessions.__getitem__))
        session = secrets.token_urlsafe(32)
        self.sessions[session] = now + SESSION_S
        return session

    def end_session(self, headers: Headers) -> None:
        self.sessions.pop(self.session_of(headers) or "", None)

    def throttled_for(self, client: str) -> float:
        """Seconds `client` must wait before it may try the token again (0: it may)."""
        recent = self.failures.get(client)
        now = time.monotonic()
        while recent and recent[0] < now - THROTTLE_S:
            recent.popleft()
        if not recent or len(recent) < FAILURES_ALLOWED:
            return 0.0
        return recent[0] + THROTTLE_S - now

    def failed(self, client: str) -> None:
        if len(self.failures) > 1024:  # many addresses: forget the old ones rather than grow
            self.failures.clear()
        self.failures.setdefault(client, deque(maxlen=FAILURES_ALLOWED)).append(time.monotonic())

    def same_origin(self, headers: Headers) -> bool:
        """The browser says where the request comes from (Origin, else Referer): it must name
        this server (host and port; the scheme may differ behind an HTTPS proxy). Clients that
        send neither (curl with the token) are not browsers and cannot be tricked by another site."""
        origin = headers.get("origin") or headers.get("referer")
        if not origin:
            return True
        return urlsplit(origin).netloc == headers.get("host", "")

    def csrf_ok(self, headers: Headers) -> bool:
        return hmac.compare_digest(headers.get(CSRF_HEADER, "").encode(), self.csrf.encode())

    def login_cookie(self, session: str, max_age: int = SESSION_S) -> str:
        secure = "; Secure" if self.secure_cookie else ""
        return f"{COOKIE}={session}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"


class Guard:
    """ASGI middleware applying a `Policy` to every HTTP request, and the security headers to
    every response."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app, self.policy = app, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            refusal = self._refusal(scope)
        except ValueError:  # a Host, Origin or Referer that does not parse (`[::1`): the client's error
            refusal = PlainTextResponse("malformed Host, Origin or Referer header", status_code=400)
        if refusal is None and scope["path"] == LOGIN_PATH and scope["method"] == "POST":
            refusal = await self._login(scope, receive)
        elif refusal is None and scope["path"] == LOGOUT_PATH and scope["method"] == "POST":
            self.policy.end_session(Headers(scope=scope))
            cleared = self.policy.login_cookie("", max_age=0)
            refusal = Response(status_code=303, headers={"location": "/", "set-cookie": cleared})
        if refusal is not None:
            await refusal(scope, receive, self._with_headers(send))
            return
        await self.app(scope, receive, self._with_headers(send))

    def _refusal(self, scope: Scope) -> Response | None:
        headers, policy, method = Headers(scope=scope), self.policy, scope["method"]
        if not policy.host_allowed(headers.get("host", "")):
            return JSONResponse({"error": "this console answers only to 127.0.0.1 or localhost"}, status_code=403)
        if method not in SAFE_METHODS and not policy.same_origin(headers):
            return JSONResponse(
                {"error": "refused: the request did not come from this console's page"}, status_code=403
            )
        if scope["path"] == LOGIN_PATH and method == "POST":
            return None
        if scope["path"].startswith("/static/") and method in SAFE_METHODS:
            return None  # the page's own code and style (the login page uses them too): nothing secret
        if not policy.authenticated(headers):
            return self._unauthorised(headers)
        if method not in SAFE_METHODS and not policy.csrf_ok(headers):
            return JSONResponse({"error": "refused: missing or wrong CSRF token (reload the page)"}, status_code=403)
        return None

    def _unauthorised(self, headers: Headers, message: str = "") -> Response:
        challenge = {"www-authenticate": 'Bearer realm="ventriloquist"'}
        if "text/html" in headers.get("accept", ""):
            return HTMLResponse(LOGIN_PAGE.format(message=message), status_code=401, headers=challenge)
        return JSONResponse(
            {"error": "a token is required (console.token): Authorization: Bearer TOKEN"},
            status_code=401,
            headers=challenge,
        )

    async def _login(self, scope: Scope, receive: Receive) -> Response:
        from urllib.parse import parse_qs

        client = (scope.get("client") or ("?", 0))[0]
        wait = self.policy.throttled_for(client)
        if wait > 0:
            log.warning("console: sign-in from %s refused, %d failed tries in a minute", client, FAILURES_ALLOWED)
            return PlainTextResponse(
                f"too many wrong tokens; try again in {wait:.0f} s", status_code=429, headers={"retry-after": "60"}
            )

        body = b""
        while len(body) < 4096:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        offered = parse_qs(body.decode(errors="replace")).get("token", [""])[0]
        if not self.policy.token_matches(offered):
            self.policy.failed(client)
            log.warning("console: failed sign-in from %s (wrong token)", client)
            return self._unauthorised(Headers({"accept": "text/html"}), "That token is not the one in console.token.")
        log.info("console: signed in from %s", client)
        session = self.policy.new_session()
        return Response(status_code=303, headers={"location": "/", "set-cookie": self.policy.login_cookie(session)})

    @staticmethod
    def _with_headers(send: Send) -> Send:
        async def sender(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        return sender
