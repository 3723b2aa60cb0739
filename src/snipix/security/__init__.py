"""Hardening: rate limits, the request body limit and security headers."""
