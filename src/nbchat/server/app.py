"""The Jupyter Server extension: the settings as traitlets and the signaling service
behind Jupyter's auth (or, on a JupyterHub single-user server, a relay to the hub's
nbchat service)."""

from __future__ import annotations

import os

from jupyter_server.extension.application import ExtensionApp
from traitlets import Unicode, default

from .fastpath import FastUpgrade
from .handlers import PresenceConn, SignalingConn, make_asset_handlers, make_handlers, nbchat_path
from .realm import Realm
from .relay import Upstream, make_relay_handlers
from .service import SignalingService
from .settings import SignalingSettings
from .wsconn import Hub


class NbChatApp(SignalingSettings, ExtensionApp):
    """Signaling and presence for nbchat rooms, behind Jupyter's auth."""

    name = "nbchat"
    load_other_extensions = True

    service_url = Unicode(
        config=True,
        help="URL of a shared nbchat signaling service (the JupyterHub service, e.g. "
        "http://127.0.0.1:8765/services/nbchat/). Set: this server relays the widget's "
        "signaling there, so users of different servers meet; empty: this server is "
        "its own signaling service. Default: $NBCHAT_SERVICE_URL.",
    )
    service_token = Unicode(
        config=True,
        help="Token this server presents to service_url. Default: $JUPYTERHUB_API_TOKEN "
        "(the single-user server's own token, which the hub maps to its owner).",
    )

    @default("service_url")
    def _default_service_url(self) -> str:
        return os.environ.get("NBCHAT_SERVICE_URL", "")

    @default("service_token")
    def _default_service_token(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    service: SignalingService

    @property
    def realm(self) -> Realm:
        return self.service.realm

    @property
    def hub(self) -> Hub:
        return self.service.hub

    @property
    def max_frame_bytes(self) -> int:
        return self.service.max_frame_bytes

    def initialize_settings(self) -> None:
        self.service = SignalingService(
            self, self.log, default_audience="everyone who can use this Jupyter server"
        )

    def initialize_handlers(self) -> None:
        self.handlers.extend(make_asset_handlers())  # served here, whoever does the signaling
        if self.service_url:
            self.log.info(
                "nbchat: relaying signaling to the shared service at %s", self.service_url
            )
            upstream = Upstream(
                self.service_url,
                self.service_token,
                os.environ.get("JUPYTERHUB_USER", ""),
                self.max_frame_bytes,
            )
            self.handlers.extend(make_relay_handlers(upstream))
        else:
            self.handlers.extend(make_handlers(self.service))
            serverapp = self.serverapp
            if serverapp is not None and self.lean_websocket and self.auth_cache_seconds > 0:
                self.service.fast_upgrade = FastUpgrade(
                    self.service,
                    serverapp.identity_provider,
                    nbchat_path(serverapp.base_url),
                    {"peerjs": SignalingConn, "presence": PresenceConn},
                    self.auth_cache_seconds,
                    self.listen_backlog,
                )
            if self.service.broker.shared:
                # Join the shared rooms as soon as the server's loop runs, not at the
                # first socket: the roster of a room must list peers on other processes.
                from tornado.ioloop import IOLoop

                self.log.info("nbchat: sharing rooms through the broker at %s", self.broker)
                IOLoop.current().add_callback(self.service.ensure_ticking)

    async def stop_extension(self) -> None:
        self.service.stop()
        await self.service.stop_broker()
