"""Student ids as file names: the one rule for every path a batch builds from an id (issue 11)."""

from __future__ import annotations

import hashlib
import re
import unicodedata

MAX_SLUG_CHARS = 64
# Already safe: what every id that intake makes looks like, so the rule is idempotent.
_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,79}")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._-]+")


def safe_path_component(name: str) -> str:
    """``name`` itself if it is a safe file name, else a readable slug of it and a hash of the original.

    Safe: 1 to 80 characters from ``[A-Za-z0-9._-]``, not starting with ``.`` or ``-`` (so never
    ``.`` or ``..``, never a hidden file, never an option). Any other name (``..``, ``a/b``,
    ``Doe Jane``, ``Müller``, a newline, bytes that are not UTF-8) becomes its ASCII slug, at most
    64 characters, plus ``-`` and 10 hex digits of the SHA-256 of the whole name: two different
    names never share a component, and the same name gives the same one on every run, which a
    resumed batch needs (the gradebook is keyed by id). Applying it twice changes nothing.
    """
    if _SAFE.fullmatch(name):
        return name
    folded = "".join(ch for ch in unicodedata.normalize("NFKD", name) if not unicodedata.combining(ch))
    slug = _UNSAFE_RUN.sub("_", folded).strip("._-")[:MAX_SLUG_CHARS].rstrip("._-") or "student"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{slug}-{digest}"
