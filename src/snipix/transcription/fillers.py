"""Filler words: the lexicon, by language, and their detection in a transcript's words.

A word is a filler when its text (case-folded, punctuation stripped) is in its language's
lexicon, when a run of consecutive words spells one of the lexicon's phrases ("you know"),
or when it is one of the recogniser's own filler tokens (pocketsphinx's `[NOISE]`,
`[SPEECH]`, `++UM++`-style tokens of other Sphinx models, `<sil>` if one is ever kept).
The lexicon is deliberately small: "like" or "so" are fillers only sometimes, and a cut
that removes a meaningful word is worse than a filler left in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

# Hesitations and discourse fillers by primary language subtag. Single words, then phrases.
FILLER_WORDS: Final[dict[str, frozenset[str]]] = {
    "en": frozenset(
        {"um", "umm", "uh", "uhh", "er", "erm", "ah", "ahh", "hmm", "hmmm", "mm", "mhm", "eh"}
    ),
    "fr": frozenset({"euh", "heu", "bah", "ben", "hein"}),
    "de": frozenset({"äh", "ähm", "öh", "hm"}),
    "es": frozenset({"eh", "em", "este", "pues"}),
}
FILLER_PHRASES: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    "en": (("you", "know"), ("i", "mean")),
    "fr": (("tu", "vois"),),
    "de": (("sag", "mal"),),
    "es": (("o", "sea"),),
}
# The recognisers' own non-word tokens: bracketed noise ([NOISE], [BREATH]), Sphinx
# "++UM++"-style fillers, and the silence marker.
_ENGINE_FILLER = re.compile(r"^(\[[A-Za-z_]+\]|\+\+[A-Za-z_]+\+\+|<sil>)$")
_PUNCTUATION = re.compile(r"[^\w']+", re.UNICODE)


def normalise(text: str) -> str:
    return _PUNCTUATION.sub("", text.casefold())


def engine_token(text: str) -> bool:
    """A recogniser's filler token rather than a word."""
    return bool(_ENGINE_FILLER.match(text.strip()))


def _primary(language: str) -> str:
    return language.split("-", 1)[0].casefold()


def filler_flags(texts: Sequence[str], language: str) -> list[bool]:
    """Which of consecutive words are fillers, in `language` (English when unknown)."""
    primary = _primary(language)
    words = FILLER_WORDS.get(primary, FILLER_WORDS["en"])
    phrases = FILLER_PHRASES.get(primary, FILLER_PHRASES["en"])
    normalised = [normalise(text) for text in texts]
    flags = [
        engine_token(text) or norm in words for text, norm in zip(texts, normalised, strict=True)
    ]
    for phrase in phrases:
        size = len(phrase)
        for index in range(len(normalised) - size + 1):
            if tuple(normalised[index : index + size]) == phrase:
                for offset in range(size):
                    flags[index + offset] = True
    return flags
