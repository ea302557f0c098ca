"""A test-only identity provider: anonymous users as Jupyter makes them, but never two
with the same display name (Jupyter draws from ~60 moon names, so two users in one
test share a name a few percent of the time and name-based assertions would flake)."""

from __future__ import annotations

import itertools
from typing import Any

from jupyter_server.auth.identity import IdentityProvider, User


class UniqueAnonymousNames(IdentityProvider):
    _numbers = itertools.count(1)

    def generate_anonymous_user(self, handler: Any) -> User:
        user = super().generate_anonymous_user(handler)
        n = next(self._numbers)
        user.name = user.display_name = f"{user.display_name} {n}"
        return user
