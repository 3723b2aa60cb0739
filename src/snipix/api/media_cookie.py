"""The media cookie: the web app's `<img>` thumbnails and `<video>` sources, without a token.

The original web app shows each project's thumbnail with a plain `<img src="/media/{id}/
thumbnail">`: the browser sends no Authorization header, so the media routes answered 401.
A sign-in, sign-up, refresh or password change on the web app's paths (`/auth/...`) also
sets `snipix_media`: HttpOnly (no script reads it), `SameSite=Lax` (no other site's page
makes the browser send it on a subresource), `Path=/media` (no other route ever sees it),
`Secure` when the request came over HTTPS. It names the user and their session generation
(`media.links.LinkSigner.sign_cookie`), so it opens only that user's media (the usual
ownership check still runs: another user's media stays 404), only for GET, and ends with
their sessions (sign out everywhere, a password change, a disabled account). Signing out
on those paths clears it. It lives as long as a refresh token of a plain sign-in and is
renewed by every refresh. `/api/v1` clients keep using tokens and signed links.
"""

from __future__ import annotations

import jwt
from fastapi import Request, Response

from snipix.accounts.schemas import TokenResponse
from snipix.media.links import MEDIA_COOKIE
from snipix.resources import get_resources

PATH = "/media"


async def set_media_cookie(request: Request, response: Response, tokens: TokenResponse) -> None:
    """Give the browser the media cookie of the session `tokens` open."""
    resources = get_resources(request)
    claims = jwt.decode(tokens.access_token, options={"verify_signature": False})
    generation = claims.get("gen")
    ttl_s = resources.settings.refresh_token_ttl_s
    signer = await resources.services.media.signer()
    value = signer.sign_cookie(
        str(claims["sub"]),
        generation=generation if isinstance(generation, int) else None,
        ttl_s=ttl_s,
    )
    response.set_cookie(
        MEDIA_COOKIE,
        value,
        max_age=ttl_s,
        path=PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )


def clear_media_cookie(response: Response) -> None:
    response.delete_cookie(MEDIA_COOKIE, path=PATH, httponly=True, samesite="lax")
