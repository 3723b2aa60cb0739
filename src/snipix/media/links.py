"""Signed media links: `?token=` for the tags that cannot send an Authorization header.

A `<video src>` or `<img src>` is loaded by the browser without the app's Bearer token, so
`GET /media/{id}/links` (authenticated as usual) hands out URLs carrying a token that
proves "user U may read project P's media until T". A token is accepted only by the media
GET routes, only for the project it names, and only until it expires
(`SNIPIX_MEDIA_URL_TTL_S`); the usual ownership check still runs with its user.

Token: `<expiry unix s>.<generation>.<user id, base64url>.<HMAC-SHA256, base64url>` over a
version tag, the project id, the user id, the generation and the expiry. The generation is
the session generation of the access token the link was asked for with (empty when that
credential names no session of this service: an identity provider's token, the dev
header); the media routes accept the link only while it is still the account's
(`accounts.revocation.SessionGate`), so ending a user's sessions ends their links too.

The key is 32 random bytes kept in the media root (`.url-signing-key`, created once, mode
0600): replicas share the media root, so they share the key; deleting the file revokes
every outstanding link.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from typing import Final

from snipix.errors import Unauthorized

KEY_FILE: Final = ".url-signing-key"
_KEY_BYTES: Final = 32
_VERSION: Final = b"snipix-media-link-v2"
# The media cookie (`MEDIA_COOKIE`): the same token shape, for every project of its user.
_COOKIE_VERSION: Final = b"snipix-media-cookie-v1"
MEDIA_COOKIE: Final = "snipix_media"
# An event stream link (`GET /api/v1/projects/{id}/events/link`): the same token shape for
# one project's live events, short-lived; a media link cannot open events, nor the reverse.
_EVENTS_VERSION: Final = b"snipix-events-link-v1"
_MAX_TOKEN: Final = 1_024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_key(root: Path) -> bytes:
    """The media root's signing key, created on first use (safe when replicas race)."""
    path = root / KEY_FILE
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        root.mkdir(parents=True, exist_ok=True)
        staged = root / f"{KEY_FILE}.{secrets.token_hex(8)}"
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(_KEY_BYTES))
            out.flush()
            os.fsync(out.fileno())
        try:
            # link() fails if the name exists: the first writer wins, everyone reads it.
            os.link(staged, path)
        except FileExistsError:
            pass
        finally:
            staged.unlink()
        key = path.read_bytes()
    if len(key) < _KEY_BYTES:
        raise RuntimeError(f"{path} is shorter than {_KEY_BYTES} bytes; delete it to renew it")
    return key


class LinkSigner:
    def __init__(self, key: bytes, ttl_s: int) -> None:
        self._key = key
        self.ttl_s = ttl_s

    def _mac(
        self,
        project_id: str,
        user_id: str,
        generation: str,
        expires: int,
        version: bytes = _VERSION,
    ) -> bytes:
        message = b"\n".join(
            [
                version,
                project_id.encode(),
                user_id.encode(),
                generation.encode(),
                str(expires).encode(),
            ]
        )
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def sign(
        self,
        user_id: str,
        project_id: str,
        *,
        generation: int | None = None,
        now: float | None = None,
    ) -> tuple[str, int]:
        """A token for this user and project, and its expiry (unix seconds)."""
        expires = int(now if now is not None else time.time()) + self.ttl_s
        gen = "" if generation is None else str(generation)
        mac = self._mac(project_id, user_id, gen, expires)
        return f"{expires}.{gen}.{_b64(user_id.encode())}.{_b64(mac)}", expires

    def sign_events(
        self,
        user_id: str,
        project_id: str,
        *,
        generation: int | None,
        ttl_s: int,
        now: float | None = None,
    ) -> tuple[str, int]:
        """A token opening this project's event stream for this user (a browser's
        EventSource sends no Authorization header), and its expiry (unix seconds)."""
        expires = int(now if now is not None else time.time()) + ttl_s
        gen = "" if generation is None else str(generation)
        mac = self._mac(project_id, user_id, gen, expires, _EVENTS_VERSION)
        return f"{expires}.{gen}.{_b64(user_id.encode())}.{_b64(mac)}", expires

    def verify_events(
        self, token: str, project_id: str, *, now: float | None = None
    ) -> tuple[str, int | None]:
        """The user of a valid, unexpired event stream token for this project and its
        session generation; 401 otherwise."""
        invalid = Unauthorized(
            "This event stream link is invalid or has expired; ask for a new one "
            "(GET /api/v1/projects/{project_id}/events/link) or send your access token."
        )
        return self._verify(token, project_id, _EVENTS_VERSION, invalid, now)

    def sign_cookie(
        self, user_id: str, *, generation: int | None, ttl_s: int, now: float | None = None
    ) -> str:
        """The media cookie's value: this user's media, any project, until `ttl_s` from now.

        Set on the web app's sign-in, because its project list shows thumbnails with a
        plain `<img>` that sends no Authorization header. Only the media GET routes read
        it, the usual ownership check still runs, and the generation ends it with the
        user's sessions.
        """
        expires = int(now if now is not None else time.time()) + ttl_s
        gen = "" if generation is None else str(generation)
        mac = self._mac("", user_id, gen, expires, _COOKIE_VERSION)
        return f"{expires}.{gen}.{_b64(user_id.encode())}.{_b64(mac)}"

    def verify_cookie(self, token: str, *, now: float | None = None) -> tuple[str, int | None]:
        """The user of a valid, unexpired media cookie and its generation; 401 otherwise."""
        return self._verify(
            token,
            "",
            _COOKIE_VERSION,
            Unauthorized("The media cookie is invalid or has expired; sign in again."),
            now,
        )

    def verify(
        self, token: str, project_id: str, *, now: float | None = None
    ) -> tuple[str, int | None]:
        """The user a valid, unexpired token for this project was issued to, and the session
        generation it carries (None: none to check); 401 otherwise."""
        invalid = Unauthorized(
            "This media link is invalid or has expired; ask for a new one "
            "(GET /media/{project_id}/links) or send your access token."
        )
        return self._verify(token, project_id, _VERSION, invalid, now)

    def _verify(
        self,
        token: str,
        project_id: str,
        version: bytes,
        invalid: Unauthorized,
        now: float | None,
    ) -> tuple[str, int | None]:
        parts = token.split(".")
        if (
            len(token) > _MAX_TOKEN
            or len(parts) != 4
            or not parts[0].isdigit()
            or not (parts[1] == "" or parts[1].isdigit())
        ):
            raise invalid
        try:
            user_id = _unb64(parts[2]).decode()
            mac = _unb64(parts[3])
        except (binascii.Error, ValueError):
            raise invalid from None
        expires = int(parts[0])
        expected = self._mac(project_id, user_id, parts[1], expires, version)
        if not hmac.compare_digest(mac, expected) or not user_id:
            raise invalid
        if expires < (now if now is not None else time.time()):
            raise invalid
        return user_id, (int(parts[1]) if parts[1] else None)
