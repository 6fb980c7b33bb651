"""Privacy attacks on pacelink's encodings: how many encoded records can an attacker re-identify?

The attacker holds the plaintext identities of a population (a register) and the encodings
a linkage unit sees, knows the schema (it is agreed openly) but not the secret. Each attack
guesses, one to one, which register entry each encoding belongs to; the figure reported is the
share of encodings it gets right. See ``docs/privacy.md``.
"""

from typing import Final

__all__ = ["ATTACKS"]

#: Every attack the harness runs, by name. ``known-k``: the attacker also knows k pairs.
ATTACKS: Final = ("frequency", "pattern-mining", "graph", "known-10", "known-100", "known-1000")
