"""Who is calling: every API request resolves to a `Principal` or is refused with 401.

Production identity is a signed JWT (`Authorization: Bearer ...`) checked by
`tokens.TokenVerifier`; the local profile also accepts an `X-User-Id` header so the editor
can be developed without an identity provider. Endpoints declare `CurrentUser` or
`AdminUser` (see `dependencies`) and never read headers themselves.
"""
