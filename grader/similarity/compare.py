"""Pairs of submissions whose own, unusual code is similar: an inverted index of fingerprints, never all pairs."""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from grader.similarity.extract import StudentCode, Template
from grader.similarity.fingerprint import Fingerprints, all_hashes, fingerprint


@dataclass(frozen=True)
class Settings:
    """Knobs of the comparison; the defaults are the calibrated ones (docs/similarity.md)."""

    k: int = 10
    window: int = 4
    threshold: float = 0.6
    min_mass: float = 12.0
    function_threshold: float = 0.9
    function_min_mass: float = 24.0
    common_share: float = 0.02
    min_common: int = 3
    identical_min_tokens: int = 60
    max_pairs: int = 200


@dataclass(frozen=True)
class FunctionMatch:
    """How similar one function (or the code outside the named functions) is in a pair."""

    name: str
    similarity: float | None
    shared: int
    mass: float = 0.0


@dataclass(frozen=True)
class PairMatch:
    """Two submissions, how similar their unusual code is, and per function."""

    a: str
    b: str
    similarity: float
    evidence: float
    functions: tuple[FunctionMatch, ...]
    identical: bool
    flagged: bool


@dataclass
class Index:
    """Fingerprints of every submission per unit, and in how many submissions each one occurs."""

    prints: list[dict[str, Fingerprints]]
    postings: dict[str, dict[int, list[int]]]
    common_at: int
    _masses: dict[tuple[int, str], float] = field(default_factory=dict)

    def weight(self, unit: str, h: int) -> float:
        """1 for a match few submissions share, falling to 0 past four times the commonness bar."""
        df = len(self.postings[unit].get(h, ()))
        if df <= self.common_at:
            return 1.0
        if df > 4 * self.common_at:
            return 0.0
        return (self.common_at / df) ** 2

    def mass(self, i: int, unit: str) -> float:
        """Weighted size of a unit: how much unusual code it holds."""
        found = self._masses.get((i, unit))
        if found is None:
            found = self._masses[(i, unit)] = sum(self.weight(unit, h) for h in self.prints[i].get(unit, {}))
        return found

    def shared_lines(self, a: int, b: int, unit: str) -> tuple[set[int], set[int]]:
        """Lines of a and of b covered by fingerprints they share that count for something."""
        first, second = self.prints[a].get(unit, {}), self.prints[b].get(unit, {})
        lines_a: set[int] = set()
        lines_b: set[int] = set()
        for h in first.keys() & second.keys():
            if self.weight(unit, h) > 0:
                lines_a |= first[h]
                lines_b |= second[h]
        return lines_a, lines_b


def build_index(codes: Sequence[StudentCode], template: Template, settings: Settings) -> Index:
    """Fingerprint every unit, with every k-gram of the template's code taken out."""
    given = all_hashes(template.streams, settings.k)
    prints: list[dict[str, Fingerprints]] = []
    postings: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, code in enumerate(codes):
        units: dict[str, Fingerprints] = {}
        for unit, streams in code.units.items():
            found = {
                h: lines for h, lines in fingerprint(streams, settings.k, settings.window).items() if h not in given
            }
            if found:
                units[unit] = found
                for h in found:
                    postings[unit][h].append(i)
        prints.append(units)
    common_at = max(settings.min_common, math.ceil(settings.common_share * len(codes)))
    return Index(prints, {u: dict(p) for u, p in postings.items()}, common_at)


def _accumulate(index: Index, codes: Sequence[StudentCode]) -> dict[tuple[int, int], dict[str, list[float]]]:
    """Weighted shared mass and shared count per pair and unit, from the posting lists only."""
    shared: dict[tuple[int, int], dict[str, list[float]]] = defaultdict(dict)
    for unit, postings in index.postings.items():
        for h, holders in postings.items():
            if len(holders) < 2 or len(holders) > 4 * index.common_at:
                continue
            w = index.weight(unit, h)
            for x, a in enumerate(holders):
                for b in holders[x + 1 :]:
                    if codes[a].archive and codes[b].archive:
                        continue  # earlier years are compared with this batch, not among themselves
                    entry = shared[(a, b)].setdefault(unit, [0.0, 0.0])
                    entry[0] += w
                    entry[1] += 1
    return shared


def similar_functions(pair: PairMatch, settings: Settings) -> list[FunctionMatch]:
    """Functions alike on their own: much unusual code, nearly all of it shared (one function copied)."""
    return [
        f for f in pair.functions
        if f.similarity is not None and f.similarity >= settings.function_threshold
        and f.mass >= settings.function_min_mass
    ]  # fmt: skip


def code_digest(code: StudentCode) -> str:
    """Same digest, same normalised code: byte-identical copies and copies that only differ in form."""
    digest = hashlib.blake2b(digest_size=16)
    for unit in sorted(code.units):
        for tokens in sorted(code.units[unit], key=lambda t: t.texts):
            digest.update(f"{unit}\0{' '.join(tokens.texts)}\0".encode())
    return digest.hexdigest()


def _pair(
    index: Index, codes: Sequence[StudentCode], a: int, b: int, found: dict[str, list[float]], settings: Settings
) -> PairMatch:
    functions: list[FunctionMatch] = []
    matched = total = 0.0
    for unit in sorted(set(index.prints[a]) & set(index.prints[b])):
        mass = min(index.mass(a, unit), index.mass(b, unit))
        got, count = found.get(unit, [0.0, 0.0])
        matched += got
        total += mass
        functions.append(FunctionMatch(unit, got / mass if mass > 0 else None, int(count), mass))
    # a few shared lines are no evidence: unusual code smaller than min_mass counts as min_mass
    similarity = min(1.0, matched / max(total, settings.min_mass)) if total > 0 else 0.0
    return PairMatch(codes[a].id, codes[b].id, similarity, matched, tuple(functions), False, False)


@dataclass
class Comparison:
    """Every scored pair, best first, and the settings that decided which are flagged."""

    pairs: list[PairMatch]
    index: Index


def compare_codes(codes: Sequence[StudentCode], template: Template, settings: Settings) -> Comparison:
    """Score the pairs that share at least one unusual fingerprint, plus the normalised-identical ones."""
    index = build_index(codes, template, settings)
    shared = _accumulate(index, codes)
    by_digest: dict[str, list[int]] = defaultdict(list)
    for i, code in enumerate(codes):
        if code.token_count >= settings.identical_min_tokens:
            by_digest[code_digest(code)].append(i)
    identical = {
        (a, b) for group in by_digest.values() for x, a in enumerate(group) for b in group[x + 1 :]
        if not (codes[a].archive and codes[b].archive)
    }  # fmt: skip
    # a pair that shares less than a quarter of min_mass cannot reach any threshold worth listing
    worth = {key for key, units in shared.items() if sum(v[0] for v in units.values()) >= settings.min_mass / 4}
    pairs: list[PairMatch] = []
    for a, b in worth | identical:
        pair = _pair(index, codes, a, b, shared.get((a, b), {}), settings)
        same = (a, b) in identical
        flagged = same or pair.similarity >= settings.threshold or bool(similar_functions(pair, settings))
        similarity = 1.0 if same else pair.similarity
        pairs.append(PairMatch(pair.a, pair.b, similarity, pair.evidence, pair.functions, same, flagged))
    pairs.sort(key=lambda p: (-p.flagged, -p.similarity, -p.evidence, p.a, p.b))
    return Comparison(pairs, index)


def clusters(pairs: Sequence[PairMatch]) -> list[list[str]]:
    """Groups of submissions joined by flagged pairs (A~B and B~C make A~B~C), largest first."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for pair in pairs:
        if pair.flagged:
            parent[find(pair.a)] = find(pair.b)
    groups: dict[str, list[str]] = defaultdict(list)
    for member in parent:
        groups[find(member)].append(member)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g))
