"""Winnowing (Schleimer, Wilkerson and Aiken, SIGMOD 2003, the algorithm behind MOSS) over token streams."""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from grader.similarity.linearise import Tokens

# hash -> the source lines of every occurrence of that k-gram in one unit
Fingerprints = dict[int, frozenset[int]]
_TOKEN_IDS: dict[str, int] = {}


def token_id(text: str) -> int:
    """A stable id per token text: crc32, not hash(), whose value for str changes from process to process."""
    found = _TOKEN_IDS.get(text)
    if found is None:
        found = _TOKEN_IDS[text] = zlib.crc32(text.encode())
    return found


def kgram_hashes(ids: list[int], k: int) -> list[int]:
    """One hash per k consecutive tokens; a stream shorter than k is one k-gram of its own."""
    if len(ids) <= k:
        return [hash(tuple(ids))] if ids else []
    # hash() of a tuple of ints is the same in every process (only str and bytes hashing is salted)
    return [hash(tuple(ids[i : i + k])) for i in range(len(ids) - k + 1)]


def winnow(hashes: list[int], window: int) -> list[int]:
    """Positions picked by robust winnowing: the rightmost minimum of each window, each once.

    Any run of at least ``window + k - 1`` tokens that two streams share yields a shared pick.
    """
    if len(hashes) <= window:
        return [min(range(len(hashes)), key=lambda i: (hashes[i], -i))] if hashes else []
    picked: list[int] = []
    for start in range(len(hashes) - window + 1):
        best = start
        for i in range(start + 1, start + window):
            if hashes[i] <= hashes[best]:
                best = i
        if not picked or picked[-1] != best:
            picked.append(best)
    return picked


def fingerprint(streams: Iterable[Tokens], k: int, window: int) -> Fingerprints:
    """The winnowed k-gram hashes of a unit's streams, each with the lines it covers."""
    found: dict[int, set[int]] = {}
    for tokens in streams:
        ids = [token_id(text) for text in tokens.texts]
        hashes = kgram_hashes(ids, k)
        for position in winnow(hashes, window):
            lines = found.setdefault(hashes[position], set())
            lines.update(tokens.lines[position : position + k])
    return {h: frozenset(lines) for h, lines in found.items()}


def all_hashes(streams: Iterable[Tokens], k: int) -> set[int]:
    """Every k-gram hash, not just the winnowed ones: what the template gives is removed in full."""
    out: set[int] = set()
    for tokens in streams:
        out.update(kgram_hashes([token_id(text) for text in tokens.texts], k))
    return out
