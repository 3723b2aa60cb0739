"""Tests of snipix.auth: tokens, dev headers and the CurrentUser / AdminUser dependencies."""
