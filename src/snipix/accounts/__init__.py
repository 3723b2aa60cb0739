"""Accounts: registration, sign-in, refresh-token rotation, sign-out and the own profile.

Served at `/api/v1/auth` and, for the original web app, at `/auth` in its envelope; both
surfaces call the same `AccountService`. Access tokens are JWTs the service signs with its
configured key and verifies with the same `TokenVerifier` as every `/api/v1` route, so a
token from `/auth/login` opens the projects API. Refresh tokens are opaque random strings,
stored only as SHA-256 hashes, rotated on every use; a reused one ends its whole family.
"""
