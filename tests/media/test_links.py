"""Signed media links: valid for one user, one project and a limited time only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from snipix.errors import Unauthorized
from snipix.media.links import KEY_FILE, LinkSigner, load_key

KEY = b"k" * 32


def test_a_link_names_its_user_until_it_expires() -> None:
    """A token verifies for its project until its expiry, and yields the user it was made for."""
    signer = LinkSigner(KEY, ttl_s=60)
    token, expires = signer.sign("alice", "p1", now=1_000)
    assert expires == 1_060
    assert signer.verify(token, "p1", now=1_059) == ("alice", None)
    with_generation, _ = signer.sign("alice", "p1", generation=4, now=1_000)
    assert signer.verify(with_generation, "p1", now=1_059) == ("alice", 4)
    with pytest.raises(Unauthorized):
        signer.verify(token, "p1", now=1_061)


def test_a_link_is_useless_for_another_project_or_with_another_key() -> None:
    """A token for one project opens no other, and only the key that made it accepts it."""
    token, _ = LinkSigner(KEY, ttl_s=60).sign("alice", "p1", now=1_000)
    with pytest.raises(Unauthorized):
        LinkSigner(KEY, ttl_s=60).verify(token, "p2", now=1_000)
    with pytest.raises(Unauthorized):
        LinkSigner(b"x" * 32, ttl_s=60).verify(token, "p1", now=1_000)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "1.2.3.4",
        "x..YWxpY2U.AAAA",
        "99999999999..YWxpY2U.AAAA",
        "99999999999.x.YWxpY2U.AAAA",
        "9" * 2_000,
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    """Garbage, truncated or forged tokens get 401, never an error page."""
    with pytest.raises(Unauthorized):
        LinkSigner(KEY, ttl_s=60).verify(token, "p1", now=1_000)


def test_tampering_with_the_user_expiry_or_generation_breaks_the_signature() -> None:
    """Changing who, until when or which session generation in a token makes it invalid."""
    signer = LinkSigner(KEY, ttl_s=60)
    token, _ = signer.sign("alice", "p1", generation=2, now=1_000)
    expires, generation, user, mac = token.split(".")
    other_user, _ = signer.sign("bob", "p1", generation=2, now=1_000)
    with pytest.raises(Unauthorized):
        signer.verify(f"{int(expires) + 3600}.{generation}.{user}.{mac}", "p1", now=1_000)
    with pytest.raises(Unauthorized):
        signer.verify(f"{expires}.{generation}.{other_user.split('.')[2]}.{mac}", "p1", now=1_000)
    for forged in ("3", ""):
        with pytest.raises(Unauthorized):
            signer.verify(f"{expires}.{forged}.{user}.{mac}", "p1", now=1_000)


def test_the_key_is_made_once_and_kept_private(tmp_path: Path) -> None:
    """The signing key is created on first use (owner-only), then every process reads it."""
    first = load_key(tmp_path / "media")
    assert load_key(tmp_path / "media") == first
    mode = stat.S_IMODE(os.stat(tmp_path / "media" / KEY_FILE).st_mode)
    assert mode == 0o600
    assert sorted(p.name for p in (tmp_path / "media").iterdir()) == [KEY_FILE]
