"""Hardening (issue 8): rate limits, the request body limit and security headers."""
