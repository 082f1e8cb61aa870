"""The ways a DKG ceremony refuses input or fails; no message ever names a secret."""

from __future__ import annotations


class DkgError(Exception):
    """Base of every DKG failure."""


class DkgMessageError(DkgError, ValueError):
    """A message on the wire is malformed (shape, hex, points, ranges)."""


class DkgProtocolError(DkgError):
    """A well-formed message is refused: wrong session, unknown or forged sender, wrong phase."""


class DkgEquivocationError(DkgError):
    """Nodes saw different messages from the same sender (a dealer or the relay lied)."""


class DkgAbort(DkgError):
    """The ceremony cannot complete (too few qualified dealers, keyset disagreement, …)."""
