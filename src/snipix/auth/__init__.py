"""Identity: who a request acts as (`Principal`), who makes a change (`Actor`), and the
verification of the tokens that prove it (`token_verifier.TokenVerifier`).

Production identity is a signed JWT (`Authorization: Bearer ...`); the local profile also
accepts an `X-User-Id` header so the editor can be developed without an identity
provider. Turning a request into a principal or an actor (the FastAPI dependencies
`CurrentUser`, `AdminUser`, `ActorDep`, `AdminDep`) is the HTTP edge's:
`snipix.api.identity`. Endpoints declare those and never read headers themselves.
"""
