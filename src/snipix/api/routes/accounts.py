"""HTTP for accounts: `/api/v1/auth` (the service's shapes) and `/auth` (the original web
app's envelope). One set of handlers serves both; only the wrapping differs, and errors on
`/auth/...` are put in the envelope by `snipix.errors` from the path alone.

Email verification and password reset send links by mail (`accounts.email_flows`);
Google sign-in needs Google OAuth credentials this service does not have, and answers 501.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Final, NoReturn

from fastapi import APIRouter, Body, Depends, Path, Request, Response, status
from pydantic import BaseModel

from snipix.accounts.email_flows import EmailFlows
from snipix.accounts.schemas import (
    EmailTokenRequest,
    Enveloped,
    ForgotPasswordRequest,
    LoginRequest,
    LogoutRequest,
    Notice,
    PasswordChange,
    PasswordReset,
    ProfileUpdate,
    RefreshRequest,
    RegisterRequest,
    StatusChange,
    TokenResponse,
    User,
)
from snipix.accounts.service import AccountService, EmailNotVerified, NotImplementedYet
from snipix.accounts.token_issuer import session_of
from snipix.api.answers import errors
from snipix.api.envelope import success
from snipix.api.identity import AdminDep, CurrentUser, current_user
from snipix.api.media_cookie import clear_media_cookie, set_media_cookie
from snipix.api.query_guard import reject_unsafe_query
from snipix.errors import SnipixError, Unauthorized, ValidationFailed
from snipix.resources import get_resources

API_PREFIX: Final = "/api/v1/auth"
COMPAT_PREFIX: Final = "/auth"

# Paths the original web app calls (src/services/authService.ts) that need outside services.
UNAVAILABLE: Final = {
    "/google": (
        "Google sign-in is not available on this server (it needs Google OAuth credentials); "
        "sign in with email and password."
    ),
}


class RefreshRefused(SnipixError):
    """A refresh token the web app's path refuses: 400 `invalid_grant`, as OAuth 2 answers
    a refresh token that is no longer good (RFC 6749, 5.2), not 401.

    The web app's sign-in client refreshes after any 401 — a 401 of the refresh itself
    too, with the same dead token, again and again (it never signs out). A 400 is the
    failure its refresh handler takes as "sign in again": it clears its tokens and goes to
    /login.
    """

    code = "invalid_grant"
    status_code = 400


async def get_account_service(request: Request) -> AccountService:
    return get_resources(request).services.accounts


ServiceDep = Annotated[AccountService, Depends(get_account_service)]


async def get_email_flows(request: Request) -> EmailFlows:
    return get_resources(request).services.account_email


EmailDep = Annotated[EmailFlows, Depends(get_email_flows)]


def _client_ip(request: Request) -> str:
    # Behind a proxy run uvicorn with --proxy-headers / --forwarded-allow-ips so this is
    # the caller, not the proxy (or every caller shares one failure count).
    return request.client.host if request.client is not None else "unknown"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    _scheme, _, token = header.strip().partition(" ")
    return token.strip() or None


def _unavailable(message: str) -> Callable[[], Coroutine[Any, Any, NoReturn]]:
    async def unavailable() -> NoReturn:
        raise NotImplementedYet(message)

    unavailable.__doc__ = message
    return unavailable


def _router(prefix: str, *, compat: bool) -> APIRouter:
    router = APIRouter(
        prefix=prefix,
        tags=["auth (original web app)" if compat else "auth"],
        dependencies=[Depends(reject_unsafe_query)],
        include_in_schema=True,
    )

    def shape(model: type[BaseModel] | None) -> Any:
        if compat:
            return Enveloped[model] if model is not None else Enveloped[None]  # type: ignore[valid-type]
        return model

    def answer(data: BaseModel | None, message: str) -> Any:
        if not compat:
            return data
        return success(data.model_dump(mode="json") if data is not None else None, message)

    async def signed_in(
        request: Request, response: Response, tokens: TokenResponse, message: str
    ) -> Any:
        # The web app's paths also hand its `<img>` thumbnails their credential.
        if compat:
            await set_media_cookie(request, response, tokens)
        return answer(tokens, message)

    @router.post(
        "/register",
        status_code=status.HTTP_201_CREATED,
        response_model=shape(TokenResponse),
        responses=errors(409, 422, 501, compat=compat),
    )
    async def register(
        body: RegisterRequest,
        request: Request,
        response: Response,
        service: ServiceDep,
        email: EmailDep,
    ) -> Any:
        """Create an account (role `user`, status `active`), sign it in, and send a link
        that verifies its email address."""
        tokens = await service.register(body)
        await email.send_verification(tokens.user.id, tokens.user.email, tokens.user.name)
        return await signed_in(request, response, tokens, "Account created.")

    @router.post(
        "/login",
        response_model=shape(TokenResponse),
        responses=errors(401, 403, 429, 501, compat=compat),
    )
    async def login(
        body: LoginRequest,
        request: Request,
        response: Response,
        service: ServiceDep,
        email: EmailDep,
    ) -> Any:
        """Sign in with email and password; `remember_me` keeps the session longer."""
        try:
            tokens = await service.login(body, _client_ip(request))
        except EmailNotVerified as unverified:
            # Only after the password matched: a new link, within the account's mail limit.
            await email.send_verification(unverified.user_id, unverified.email, unverified.name)
            raise
        return await signed_in(request, response, tokens, "Signed in.")

    @router.post(
        "/refresh",
        response_model=shape(TokenResponse),
        responses=errors(
            403,
            501,
            say={400: "The refresh token is unknown, expired, revoked or used up: sign in."}
            if compat
            else {401: "The refresh token is unknown, expired, revoked or used up."},
            compat=compat,
        ),
    )
    async def refresh(
        body: RefreshRequest, request: Request, response: Response, service: ServiceDep
    ) -> Any:
        """A new access token and a new refresh token; the one sent can no longer be used."""
        try:
            tokens = await service.refresh(body.refresh_token)
        except Unauthorized as refused:
            if not compat:
                raise
            raise RefreshRefused(refused.message) from None
        return await signed_in(request, response, tokens, "Tokens refreshed.")

    @router.post(
        "/logout",
        status_code=status.HTTP_200_OK if compat else status.HTTP_204_NO_CONTENT,
        response_model=shape(None),
        responses=errors(401, 422, compat=compat),
    )
    async def logout(
        request: Request,
        response: Response,
        service: ServiceDep,
        body: Annotated[LogoutRequest | None, Body()] = None,
    ) -> Any:
        """End the session of the refresh token sent, or else of the bearer access token."""
        refresh_token = body.refresh_token if body is not None else None
        session_id: str | None = None
        token = _bearer(request)
        if token is not None:
            await current_user(request)  # 401 for an invalid or expired access token
            session_id = session_of(token)
        elif refresh_token is None:
            raise ValidationFailed(
                "Send the refresh token of the session to end, or sign out with its "
                "access token in the Authorization header."
            )
        await service.logout(refresh_token=refresh_token, session_id=session_id)
        if compat:
            clear_media_cookie(response)
            return answer(None, "Signed out.")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post(
        "/logout-all",
        status_code=status.HTTP_200_OK if compat else status.HTTP_204_NO_CONTENT,
        response_model=shape(None),
        responses=errors(401, 404, compat=compat),
    )
    async def logout_all(user: CurrentUser, response: Response, service: ServiceDep) -> Any:
        """Sign out everywhere: every access token, refresh token and media link of the
        account stops working on every replica, this request's token included."""
        await service.logout_all(user.user_id)
        if compat:
            clear_media_cookie(response)
            return answer(None, "Signed out everywhere.")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post(
        "/password",
        response_model=shape(TokenResponse),
        responses=errors(401, 404, 409, 422, 429, 501, compat=compat),
    )
    async def change_password(
        body: PasswordChange,
        request: Request,
        response: Response,
        user: CurrentUser,
        service: ServiceDep,
    ) -> Any:
        """Change the password. Every session of the account ends; the answer carries the
        tokens of a new one, so the device that made the change stays signed in."""
        token = _bearer(request)
        session_id = session_of(token) if token is not None else None
        tokens = await service.change_password(user.user_id, body, _client_ip(request), session_id)
        return await signed_in(request, response, tokens, "Password changed.")

    @router.get("/me", response_model=shape(User), responses=errors(401, 404, compat=compat))
    async def me(user: CurrentUser, service: ServiceDep) -> Any:
        """The signed-in user's account."""
        return answer(await service.me(user.user_id), "")

    @router.put("/me", response_model=shape(User), responses=errors(401, 404, 422, compat=compat))
    async def update_me(body: ProfileUpdate, user: CurrentUser, service: ServiceDep) -> Any:
        """Change `name`, `username`, `avatar_url` or `preferences` (only the fields sent)."""
        return answer(await service.update_profile(user.user_id, body), "Profile updated.")

    @router.post(
        "/verify-email",
        response_model=Enveloped[None] if compat else Notice,
        responses=errors(400, 422, compat=compat),
    )
    async def verify_email(body: EmailTokenRequest, email: EmailDep) -> Any:
        """Verify the email address with the token from the link the verification mail
        holds. Single use, valid 48 hours; no sign-in needed (the link may be opened on
        another device). An unknown, expired or used token: 400, nothing changes."""
        message = await email.verify_email(body.token)
        return answer(None, message) if compat else _message(message)

    @router.post(
        "/resend-verification",
        response_model=Enveloped[None] if compat else Notice,
        responses=errors(401, 404, 429, compat=compat),
    )
    async def resend_verification(request: Request, user: CurrentUser, email: EmailDep) -> Any:
        """Send the signed-in account a new verification link (a verified one: nothing is
        sent). Limited per account and per client address (429 with Retry-After)."""
        message = await email.resend_verification(user.user_id, _client_ip(request))
        return answer(None, message) if compat else _message(message)

    @router.post(
        "/forgot-password",
        response_model=Enveloped[None] if compat else Notice,
        responses=errors(422, 429, compat=compat),
    )
    async def forgot_password(
        body: ForgotPasswordRequest, request: Request, email: EmailDep
    ) -> Any:
        """Mail a password-reset link (valid 30 minutes) if the address has an account.
        The answer is the same whether it has one or not; too many requests from one
        client address: 429."""
        message = await email.forgot_password(body.email, _client_ip(request))
        return answer(None, message) if compat else _message(message)

    @router.post(
        "/reset-password",
        response_model=Enveloped[None] if compat else Notice,
        responses=errors(400, 422, compat=compat),
    )
    async def reset_password(body: PasswordReset, email: EmailDep) -> Any:
        """Set a new password with the token from the reset mail. Every session of the
        account ends (access tokens, refresh tokens, media links); sign in with the new
        password. An unknown, expired or used token: 400, nothing changes."""
        message = await email.reset_password(body.token, body.new_password)
        return answer(None, message) if compat else _message(message)

    for path, message in UNAVAILABLE.items():
        router.add_api_route(
            path,
            _unavailable(message),
            methods=["POST"],
            status_code=status.HTTP_501_NOT_IMPLEMENTED,
            response_model=None,
            responses=errors(501, compat=compat),
            name=f"unavailable_{path.strip('/').replace('-', '_')}",
        )
    return router


def _message(message: str) -> Notice:
    return Notice(message=message)


router = _router(API_PREFIX, compat=False)
compat_router = _router(COMPAT_PREFIX, compat=True)

# --- administrators ----------------------------------------------------------------------

admin_router = APIRouter(
    prefix="/api/v1/admin/users",
    tags=["admin"],
    dependencies=[Depends(reject_unsafe_query)],
)
UserId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="The account's id.")]
_NOT_YOURSELF = (
    "An administrator cannot {what} their own account here (it would end this session and "
    "could leave no administrator); ask another one, or use `snipix users`."
)


@admin_router.patch(
    "/{user_id}",
    response_model=User,
    responses=errors(say={404: "No such account (or it is deleted)."}),
)
async def change_status(
    user_id: UserId, body: StatusChange, admin: AdminDep, service: ServiceDep
) -> User:
    """Admin: suspend an account (`suspended`: no sign-in, every session and media link
    ends on every replica) or let it sign in again (`active`; the old sessions stay ended)."""
    if user_id == admin.user_id:
        raise ValidationFailed(_NOT_YOURSELF.format(what="change the status of"))
    return User.from_document(await service.set_status(user_id, body.status))


@admin_router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=errors(say={404: "No such account (or it is deleted already)."}),
)
async def delete_account(user_id: UserId, admin: AdminDep, service: ServiceDep) -> Response:
    """Admin: delete an account. Every session ends, the email is free for a new account,
    the personal fields and the password are removed; the projects are kept."""
    if user_id == admin.user_id:
        raise ValidationFailed(_NOT_YOURSELF.format(what="delete"))
    await service.delete_account(user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
