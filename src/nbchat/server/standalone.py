"""``nbchat-signaling``: the signaling service outside Jupyter Server.

The same service object and handler mixins as the Jupyter extension, behind one of two
kinds of auth:

- **token** (tests, small deployments): ``--token`` or ``$NBCHAT_SIGNALING_TOKEN``,
  presented as ``Authorization: token …`` on any request or WebSocket (PeerJS's own
  ``token`` query argument is not ours), after which a signed cookie carries the same
  identity for browsers. Without a configured token one is generated and logged, as
  Jupyter does; on anything but loopback the service refuses to start without one.
- **JupyterHub** (``--hub``, the default when JupyterHub launched us): the hub's own
  service OAuth (``HubOAuth``): API tokens in the ``Authorization`` header, or the
  OAuth cookie for browsers. The identity is the hub user, with their groups.

``GET {base_url}health`` (unauthenticated, no details) is for load balancers;
``GET {base_url}metrics`` gives Prometheus text (authenticated, counts only).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import os
import secrets
import signal
import sys
from typing import Any

from tornado import web
from tornado.httpserver import HTTPServer
from tornado.websocket import WebSocketHandler
from traitlets import Bool, Int, Unicode, default
from traitlets.config import Application

from .._version import __version__
from ..protocol import Identity
from .broker import check_broker_url
from .handlers import (
    CertMixin,
    IdMixin,
    PeersMixin,
    PresenceMixin,
    SessionMixin,
    SignalingMixin,
    StatsMixin,
    authenticated_403,
)
from .service import SignalingService
from .settings import SignalingSettings

__all__ = ["SignalingApp", "main"]

USER_COOKIE = "nbchat-signaling-user"
_COLORS = [f"var(--jp-collaborator-color{i})" for i in range(1, 8)]


def _palette_color(name: str) -> str:
    """One of JupyterLab's collaborator colours, the same for a name every time."""
    return _COLORS[hashlib.sha256(name.encode()).digest()[0] % len(_COLORS)]


def anonymous_identity(username: str) -> Identity:
    """A token holder's identity: a stable, readable name derived from its username."""
    name = "Guest " + username.rsplit("-", 1)[-1][:4].upper()
    return Identity(
        username=username,
        name=name,
        display_name=name,
        initials="G" + name[6:7],
        color=_palette_color(username),
        avatar_url=None,
    )


def hub_identity(model: dict[str, Any]) -> Identity:
    name = str(model.get("name", ""))
    initials = "".join(part[:1] for part in name.replace("_", " ").replace("-", " ").split())
    return Identity(
        username=name,
        name=name,
        display_name=name,
        initials=(initials or name[:1])[:2].upper(),
        color=_palette_color(name),
        avatar_url=None,
    )


# ---- auth bases --------------------------------------------------------------------------


class _TokenAuth(web.RequestHandler):
    """``Authorization: token T`` (any request, WebSockets included) or our signed cookie."""

    groups: list[str] | None = None
    _identity: Identity | None = None

    def get_current_user(self) -> Identity | None:
        if self._identity is not None:
            return self._identity
        expected: str = self.settings["nbchat_token"]
        header = self.request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        cookie = self.get_signed_cookie(USER_COOKIE, max_age_days=30)
        username = cookie.decode() if cookie else None
        if scheme.lower() in ("token", "bearer") and secrets.compare_digest(
            presented.strip().encode(), expected.encode()
        ):
            if username is None:
                username = "guest-" + secrets.token_hex(6)
                self.set_signed_cookie(
                    USER_COOKIE,
                    username,
                    httponly=True,
                    samesite="Strict",
                    path=self.settings["base_url"],
                )
        elif header:
            return None  # a wrong token is a refusal, whatever the cookie says
        if username is None:
            return None
        self._identity = anonymous_identity(username)
        return self._identity

    @property
    def identity(self) -> Identity:
        user = self.current_user
        assert user is not None  # only called once authenticated
        return user  # type: ignore[no-any-return]


def _hub_auth_base() -> type:
    from jupyterhub.services.auth import HubOAuthenticated

    class _HubAuth(HubOAuthenticated, web.RequestHandler):  # type: ignore[misc]
        """JupyterHub's service OAuth: a hub API token or the OAuth cookie."""

        @property
        def identity(self) -> Identity:
            return hub_identity(self.current_user)

        @property
        def groups(self) -> list[str] | None:
            groups = self.current_user.get("groups")
            return [str(g) for g in groups] if isinstance(groups, list) else []

    return _HubAuth


class _JsonErrors(web.RequestHandler):
    def write_error(self, status_code: int, **kwargs: Any) -> None:
        reason = self._reason
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            reason = exc.log_message % exc.args if exc.args else exc.log_message
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": reason}))


class _SocketBase(WebSocketHandler):
    def keepalive_seconds(self) -> tuple[float, float]:
        app = self.settings["nbchat_app"]
        return app.ws_ping_interval, app.ws_ping_timeout

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if not self.current_user:
            raise web.HTTPError(403, "Authentication required")
        await super().get(*args, **kwargs)


class HealthHandler(web.RequestHandler):
    """``GET {base_url}health``: 200 while we serve, no auth. ``{"status": "ok"}``; with
    a broker that cannot be reached, ``"degraded"`` and why (peers on this process are
    still served, so the answer stays 200)."""

    def initialize(self, service: SignalingService) -> None:
        self.service = service

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(self.service.health()))


def _metrics_registry(service: SignalingService) -> Any:
    """A Prometheus registry whose one collector reads the service's counts at each scrape."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    class Collector:
        def collect(self) -> Any:
            m = service.metrics()
            yield GaugeMetricFamily("nbchat_peers", "Connected signaling peers", m["clients"])
            yield GaugeMetricFamily("nbchat_rooms", "Rooms with a peer or subscriber", m["rooms"])
            yield GaugeMetricFamily(
                "nbchat_presence_subscribers", "Presence sockets", m["subscribers"]
            )
            yield GaugeMetricFamily(
                "nbchat_queued_frames", "Frames queued for an offline id", m["queued"]
            )
            yield CounterMetricFamily(
                "nbchat_relayed_frames", "Frames relayed between peers", m["relayed"]
            )
            refused = CounterMetricFamily(
                "nbchat_refused_frames", "Frames refused, by reason", labels=["reason"]
            )
            for reason, count in sorted(m["refused"].items()):
                refused.add_metric([reason], count)
            yield refused
            if "broker_up" in m:  # a shared broker (Redis)
                yield GaugeMetricFamily(
                    "nbchat_broker_up", "1 while the Redis broker is reachable", m["broker_up"]
                )
                yield GaugeMetricFamily(
                    "nbchat_remote_peers", "Peers of other processes known here", m["remote_peers"]
                )

    registry = CollectorRegistry(auto_describe=True)
    registry.register(Collector())
    return registry


def make_standalone_handlers(
    service: SignalingService, base_url: str, hub: bool
) -> list[tuple[str, type, dict[str, Any]]]:
    """The nbchat routes under ``base_url``, behind token or hub auth."""
    auth: type = _hub_auth_base() if hub else _TokenAuth

    def http(name: str, mixin: type) -> type:
        return type(name, (mixin, auth, _JsonErrors), {"get": authenticated_403(mixin.get)})  # type: ignore[attr-defined]

    def socket(name: str, mixin: type) -> type:
        return type(name, (mixin, _SocketBase, auth), {})

    from prometheus_client import generate_latest

    registry = _metrics_registry(service)

    class MetricsHandler(auth, _JsonErrors):  # type: ignore[misc]
        @authenticated_403
        def get(self) -> None:
            self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.finish(generate_latest(registry))

    class IndexHandler(auth, _JsonErrors):  # type: ignore[misc]
        """``GET {base_url}``: who am I and what is this (a person checking the service)."""

        @authenticated_403
        def get(self) -> None:
            self.set_header("Content-Type", "application/json")
            self.finish(
                json.dumps(
                    {"service": "nbchat-signaling", "version": __version__, "user": self.identity}
                )
            )

    kwargs = {"service": service}
    routes: list[tuple[str, type, dict[str, Any]]] = [
        (r"nbchat/session", http("SessionHandler", SessionMixin), kwargs),
        (r"nbchat/stats", http("StatsHandler", StatsMixin), kwargs),
        (r"nbchat/peerjs", socket("SignalingHandler", SignalingMixin), kwargs),
        (r"nbchat/presence", socket("PresenceHandler", PresenceMixin), kwargs),
        (r"nbchat/([^/]+)/id", http("IdHandler", IdMixin), kwargs),
        (r"nbchat/([^/]+)/cert", http("CertHandler", CertMixin), kwargs),
        (r"nbchat/([^/]+)/peers", http("PeersHandler", PeersMixin), kwargs),
        (r"health", HealthHandler, kwargs),
        (r"metrics", MetricsHandler, {}),
        (r"", IndexHandler, {}),
    ]
    if hub:
        from jupyterhub.services.auth import HubOAuthCallbackHandler

        routes.append((r"oauth_callback", HubOAuthCallbackHandler, {}))
    return [(base_url + pattern, cls, kw) for pattern, cls, kw in routes]


def _is_loopback(ip: str) -> bool:
    if ip == "localhost":
        return True
    try:  # "" (every interface) is not an address: not loopback
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


class SignalingApp(SignalingSettings, Application):
    """nbchat's signaling and presence as a service of its own (JupyterHub or standalone)."""

    name = "nbchat-signaling"
    version = __version__
    description = __doc__

    ip = Unicode("127.0.0.1", config=True, help="The address to listen on.")
    port = Int(8765, config=True, help="The port to listen on.")
    base_url = Unicode(config=True, help="URL prefix of every route (ends in /).")
    token = Unicode(
        config=True,
        help="The token clients present (Authorization: token …). Default: "
        "$NBCHAT_SIGNALING_TOKEN; if empty, a random one is generated and logged.",
    )
    hub = Bool(
        config=True,
        help="Authenticate with JupyterHub's service OAuth instead of a token (default: "
        "on when JupyterHub started us, i.e. $JUPYTERHUB_API_TOKEN is set).",
    )
    cookie_secret = Unicode(
        config=True,
        help="Secret signing our cookies. Default: $NBCHAT_SIGNALING_COOKIE_SECRET, else "
        "random per process. Several instances behind one load balancer (--broker) need "
        "the same secret, so that a cookie set by one is valid on the others.",
    )
    ws_ping_interval = Int(30, config=True, help="Seconds between WebSocket keep-alive pings.")
    ws_ping_timeout = Int(90, config=True, help="Seconds without a reply before a socket drops.")
    config_file = Unicode(
        "nbchat_signaling_config.py", config=True, help="A traitlets config file to load."
    )

    aliases = {
        "ip": "SignalingApp.ip",
        "port": "SignalingApp.port",
        "base-url": "SignalingApp.base_url",
        "token": "SignalingApp.token",
        "broker": "SignalingApp.broker",
        "config": "SignalingApp.config_file",
        "log-level": "Application.log_level",
    }
    flags = {
        "hub": ({"SignalingApp": {"hub": True}}, "Use JupyterHub's service OAuth."),
        "no-hub": ({"SignalingApp": {"hub": False}}, "Use a token even under JupyterHub."),
    }

    @default("log_level")
    def _default_log_level(self) -> int:
        return logging.INFO

    @default("log_format")
    def _default_log_format(self) -> str:
        return "[%(levelname)1.1s %(asctime)s.%(msecs).03d %(name)s] %(message)s"

    @default("base_url")
    def _default_base_url(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")

    @default("token")
    def _default_token(self) -> str:
        return os.environ.get("NBCHAT_SIGNALING_TOKEN", "")

    @default("hub")
    def _default_hub(self) -> bool:
        return bool(os.environ.get("JUPYTERHUB_API_TOKEN"))

    @default("port")
    def _default_port(self) -> int:
        # A hub-managed service is told where to listen.
        url = os.environ.get("JUPYTERHUB_SERVICE_URL", "")
        if url:
            from urllib.parse import urlsplit

            port = urlsplit(url).port
            if port:
                return port
        return 8765

    @default("cookie_secret")
    def _default_cookie_secret(self) -> str:
        shared = os.environ.get("NBCHAT_SIGNALING_COOKIE_SECRET", "")
        if shared:
            return shared
        if self.broker:
            self.log.warning(
                "nbchat-signaling: --broker is set but no cookie_secret: a cookie set by "
                "this instance is refused by the others behind the same load balancer; set "
                "NBCHAT_SIGNALING_COOKIE_SECRET (or SignalingApp.cookie_secret) to one "
                "value on every instance"
            )
        return secrets.token_hex(32)

    def initialize(self, argv: Any = None) -> None:
        super().initialize(argv)
        if self.config_file and os.path.exists(self.config_file):
            self.load_config_file(self.config_file)
        if not self.base_url.startswith("/"):
            self.base_url = "/" + self.base_url
        if not self.base_url.endswith("/"):
            self.base_url += "/"
        try:
            check_broker_url(self.broker)
        except ValueError as error:
            self.log.critical("nbchat-signaling: %s", error)
            self.exit(1)
        if not self.hub and not self.token:
            if not _is_loopback(self.ip):
                self.log.critical(
                    "nbchat-signaling: refusing to listen on %s without a token: pass "
                    "--token or set NBCHAT_SIGNALING_TOKEN (or run it as a JupyterHub "
                    "service with --hub)",
                    self.ip,
                )
                self.exit(1)
            self.token = secrets.token_urlsafe(24)
            self.log.warning("nbchat-signaling: no token configured; generated one: %s", self.token)

    def make_app(self) -> tuple[web.Application, SignalingService]:
        service = SignalingService(
            self,
            self.log,
            default_audience="everyone signed in to this hub"
            if self.hub
            else "everyone with this service's token",
        )
        settings: dict[str, Any] = {
            "base_url": self.base_url,
            "cookie_secret": self.cookie_secret,
            "nbchat_token": self.token,
            "nbchat_app": self,
            "websocket_max_message_size": service.max_frame_bytes,
        }
        if self.hub:
            from jupyterhub.services.auth import HubOAuth

            # PeerJS puts its own token in the WebSocket query: never read it as ours.
            settings["hub_auth"] = HubOAuth(parent=self, cache_max_age=60, allow_token_in_url=False)
        handlers = make_standalone_handlers(service, self.base_url, self.hub)
        return web.Application(handlers, **settings), service

    def start(self) -> None:
        asyncio.run(self.serve())

    async def serve(self) -> None:
        app, service = self.make_app()
        await service.start()
        server = HTTPServer(app, xheaders=True)
        server.listen(self.port, self.ip)
        mode = "JupyterHub OAuth" if self.hub else "token"
        self.log.info(
            "nbchat-signaling %s on http://%s:%d%s (auth: %s)",
            __version__,
            self.ip,
            self.port,
            self.base_url,
            mode,
        )
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        await stopping.wait()
        self.log.info(
            "nbchat-signaling: shutting down; telling %d peer(s)", service.realm.client_count
        )
        server.stop()
        # Peers hear 1001 (going away) and reconnect by themselves, elsewhere if there is one.
        service.stop("server shutting down")
        await asyncio.sleep(0)  # let the close frames be written
        await service.stop_broker()
        await server.close_all_connections()


def main(argv: list[str] | None = None) -> None:
    app = SignalingApp()
    app.initialize(argv if argv is not None else sys.argv[1:])
    app.start()


if __name__ == "__main__":
    main()
