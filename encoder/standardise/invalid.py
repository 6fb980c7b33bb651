"""The one error a standardiser raises, for a value that cannot be standardised."""

from __future__ import annotations

__all__ = ["InvalidValue"]


# The name is fixed by the encoder API that other modules import, hence no "Error" suffix.
class InvalidValue(ValueError):
    """A value that cannot be standardised.

    Its message is a short reason and NEVER contains the value itself (privacy: messages end up
    in logs and reports). Every reason raised by this package is one of the fixed strings its
    field modules define (listed in docs/standardisation.md).
    """
