"""Ask the TURN relay for an allocation before relying on it, so a wrong secret or an
unreachable relay is a clear error instead of a chat that never connects.

aiortc swallows TURN failures while gathering: with a wrong secret (401) or no relay at
the address it gathers no relayed candidate and, relay-only, no candidate at all, and
every connection then sits in ICE "checking" until it times out. We make the same
allocation aiortc would (its first usable TURN URL, via its own URL parsing) with aioice's
TURN client and translate the outcome.
"""

from __future__ import annotations

import asyncio
import logging

from aioice import stun
from aioice.turn import create_turn_endpoint
from aiortc import RTCConfiguration
from aiortc.rtcicetransport import connection_kwargs

from .errors import TurnError, TurnRefused, TurnUnreachable

__all__ = ["TURN_CHECK_TIMEOUT", "check_turn"]

log = logging.getLogger(__name__)

#: Seconds to wait for the relay's answer. aioice retransmits for ~30 s; a relay that has
#: not answered within this on a working network is not going to carry a chat.
TURN_CHECK_TIMEOUT = 5.0
#: STUN error codes that mean "your credentials are not accepted" (RFC 8489 §14.8).
_AUTH_ERRORS = {401, 403, 431, 438}


async def check_turn(config: RTCConfiguration, timeout: float = TURN_CHECK_TIMEOUT) -> bool:
    """Allocate (and release) a relayed address on ``config``'s TURN server.

    Returns False if ``config`` names no TURN server aiortc can use, True if the
    allocation worked; raises :class:`TurnRefused` or :class:`TurnUnreachable` if not.
    """
    kwargs = connection_kwargs(config.iceServers or [])
    server = kwargs.get("turn_server")
    if server is None:
        return False
    where = f"{server[0]}:{server[1]} ({kwargs['turn_transport']})"
    try:
        transport, _ = await asyncio.wait_for(
            create_turn_endpoint(
                asyncio.DatagramProtocol,
                server_addr=server,
                username=kwargs["turn_username"],
                password=kwargs["turn_password"],
                ssl=kwargs["turn_ssl"],
                transport=kwargs["turn_transport"],
            ),
            timeout,
        )
    except stun.TransactionFailed as error:
        code, reason = error.response.attributes.get("ERROR-CODE", (0, "no error code"))
        if code in _AUTH_ERRORS:
            raise TurnRefused(
                f"the TURN relay refused our credentials ({code} {reason}) at {where}: "
                "check the server's NbChatApp.turn_secret against the relay's "
                "static-auth-secret"
            ) from error
        raise TurnError(
            f"the TURN relay at {where} refused an allocation ({code} {reason})"
        ) from error
    except (stun.TransactionTimeout, asyncio.TimeoutError) as error:
        raise TurnUnreachable(
            f"cannot reach the TURN relay at {where}: no answer within {timeout:g} s"
        ) from error
    except OSError as error:
        raise TurnUnreachable(
            f"cannot reach the TURN relay at {where} ({error.strerror or error})"
        ) from error
    transport.close()
    log.debug("nbchat: TURN relay at %s allocated a relayed address", where)
    return True
