"""The protocol's own refusal: an answer that does not check out, below the SDK and the gateway.

Checks shared by both sides (a node's delegation answer, the committee's
keyset) raise a :class:`ProtocolError` saying what is wrong. Neither side
lets it through as is: the SDK turns it into ``UntrustedResponse`` at its
edge (``tkms.client.errors.untrusted``), the gateway into a node failure or
its own API error. So the checks need not know who asked.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Something a peer sent does not check out; the message says what (never a secret)."""
