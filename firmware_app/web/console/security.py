"""Who may use the console and `/metrics`, checked before any route runs.

- Bound to 127.0.0.1 or ::1 (the default) without a token: only the loopback host names are
  answered (a web page elsewhere cannot reach it by pointing its own name at 127.0.0.1: DNS
  rebinding).
- Bound anywhere else, or whenever `console.token` is set: every request carries the token, as
  `Authorization: Bearer …` (Prometheus, curl) or the cookie the login form sets; else 401.
- Requests that change something (POST) must come from the page itself: the browser's Origin
  (or Referer) names this server, and the page's CSRF token is in `X-CSRF-Token`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from firmware_app.config import LOOPBACK, Settings

COOKIE = "ventriloquist_console"
CSRF_HEADER = "x-csrf-token"
LOGIN_PATH = "/login"
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}
PROCESS_CSRF = secrets.token_urlsafe(32)  # one per process: a page stays valid when the server restarts in it
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),  # nobody frames the page to trick a click on a slider
    (b"referrer-policy", b"same-origin"),  # (no-referrer would make a form's Origin "null")
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
        # the login cookie proves the token was typed without being it (a leaked cookie is no Bearer token)
        self.session = hmac.new(self.token.encode(), b"ventriloquist console session", hashlib.sha256).hexdigest()
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
        cookie = SimpleCookie(headers.get("cookie", ""))
        return COOKIE in cookie and hmac.compare_digest(cookie[COOKIE].value.encode(), self.session.encode())

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

    def login_cookie(self) -> str:
        secure = "; Secure" if self.secure_cookie else ""
        return f"{COOKIE}={self.session}; Path=/; HttpOnly; SameSite=Strict{secure}"


class Guard:
    """ASGI middleware applying a `Policy` to every HTTP request, and the security headers to
    every response."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app, self.policy = app, policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is None and scope["path"] == LOGIN_PATH and scope["method"] == "POST":
            refusal = await self._login(receive)
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

    async def _login(self, receive: Receive) -> Response:
        from urllib.parse import parse_qs

        body = b""
        while len(body) < 4096:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        offered = parse_qs(body.decode(errors="replace")).get("token", [""])[0]
        if not self.policy.token_matches(offered):
            return self._unauthorised(Headers({"accept": "text/html"}), "That token is not the one in console.token.")
        return Response(status_code=303, headers={"location": "/", "set-cookie": self.policy.login_cookie()})

    @staticmethod
    def _with_headers(send: Send) -> Send:
        async def sender(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        return sender
