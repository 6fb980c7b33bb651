"""The root of a standardised given name: one form shared by a name and its nicknames.

A derived feature with `"derive": "name_root"` hashes the root of its source's given name, so
that "bill", "billy", "will" and "william" give one token, as do "liz", "beth" and
"elizabeth". The relations come from the `nicknames` package (a hand-curated list of English
names and their nicknames), pinned to one version: a different list gives different roots,
and so different bits, so every partner of a linkage must encode with the same version.

The rule, for a name as the name standardiser leaves it (lower-case a-z, words joined):

1. A name in `_UK_ROOTS` takes the root of the name it maps to (British and Irish forms the
   package lacks, and the few cases where British usage contradicts the package's choice).
2. Otherwise, among the names the package lists it as a nickname of (its canonicals) that
   are longer than it, the one the package lists the most nicknames for is its parent (ties:
   alphabetically first), and its root is its parent's root. Longer only: the package also
   lists full names as nicknames of their own diminutives ("william" of "bill") and names of
   one length as each other's ("jane", "jean"); a nickname is shorter than the name it
   shortens, and requiring it makes every chain end. The most nicknames: an ambiguous
   nickname ("alex": alexander, alexandra, alexis, ...) goes to the form that is shortened
   in the most ways, the usual full name, and agrees with that form and its other nicknames
   only (alex and alexander agree; alexandra keeps its own root).
3. A name with no such canonical is its own root, as is any name the package does not list.

Names arrive concatenated ("Mary Anne" is "maryanne"): the word boundary is gone, so such a
value is looked up whole and, not being in the list, is its own root. Splitting it would
guess where one name ends; the bigram given-name feature already scores the overlap.

The rule merges some distinct full names that the package links ("john" and "jonathan",
"mary" and "maureen"): that costs a little precision where two people differ only in such a
name, and nothing in recall.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

from nicknames import NickNamer

__all__ = ["name_root", "name_roots"]

# What the name standardiser can produce; other entries of the package (hyphens, spaces,
# apostrophes) can never be looked up, so are left out.
_STANDARD = re.compile(r"[a-z]+")

#: Names whose root is that of another name, on top of the package's relations.
_UK_ROOTS: Mapping[str, str] = {
    # Gaelic and Welsh forms of English names, common in the UK and Ireland, that the package
    # does not list (accents are folded by the name standardiser: Séamus is "seamus").
    "hamish": "james",  # Scottish Gaelic Seumas, in its vocative Sheumais
    "seamus": "james",  # Irish Séamus
    "iain": "john",  # the Scottish spelling of Ian, which the package has (ian -> john)
    "sean": "john",  # Irish Seán, from Norman French Jehan
    "shaun": "john",  # anglicised spelling of Seán
    "eoin": "john",  # Irish Eoin
    "dafydd": "david",  # Welsh
    "sian": "jane",  # Welsh Siân, from Jeanne
    "siobhan": "joan",  # Irish Siobhán, from Jehanne
    "mairi": "mary",  # Scottish Gaelic Màiri
    "eilidh": "helen",  # Scottish Gaelic
    # British usage over the package's choice: the package also links these to another name
    # that it lists more nicknames for (robert for bill, jacqueline for jack, benjamin for
    # jamie, salvador for sally, harold for harry), which rule 2 would pick.
    "bill": "william",
    "billy": "william",
    "jack": "john",
    "jamie": "james",
    "sally": "sarah",
    "harry": "henry",
}


@functools.cache
def name_roots() -> Mapping[str, str]:
    """Every name whose root is not itself, mapped to its root (built once, on first use)."""
    namer = NickNamer()
    nicknames = {k: v for k, v in namer.nickname_lookup.items() if _STANDARD.fullmatch(k)}
    canonicals = namer.canonical_lookup

    def parent(name: str) -> str | None:
        if name in _UK_ROOTS:
            return _UK_ROOTS[name]
        longer = [
            c for c in canonicals.get(name, ()) if _STANDARD.fullmatch(c) and len(c) > len(name)
        ]
        if not longer:
            return None
        return min(longer, key=lambda c: (-len(nicknames.get(c, ())), c))

    @functools.cache
    def root(name: str) -> str:
        up = parent(name)
        return name if up is None else root(up)

    names = {n for n in (*canonicals, *nicknames, *_UK_ROOTS) if _STANDARD.fullmatch(n)}
    table = {name: root(name) for name in sorted(names)}
    # A root is its own root: the value a derived feature hashes is a fixed point of the rule.
    assert all(table[r] == r for r in table.values() if r in table)
    return {name: r for name, r in table.items() if r != name}


def name_root(name: str) -> str:
    """The root of a standardised given name ("" stays ""); a name not listed is its own root.

    Args:
        name: A value of the name standardiser: lower-case a-z ("" when missing).
    """
    return name_roots().get(name, name)
