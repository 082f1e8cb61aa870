"""A reshare dealer that cheats, run inside the real node app (test code, never shipped).

The node's ``ReshareService.participant_factory`` is the seam, as the DKG's
is in tests/adversary.py: the process is a real node, only its state machine
deals a wrong sub-share to one new member and then withholds the
justification, so that it is accused and disqualified.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from tests.adversary import serve_in_thread
from tkms.crypto import curve, ecies
from tkms.dkg import Deal, DkgMessage, Justification
from tkms.dkg.messages import EncryptedShare, sign
from tkms.dkg.reshare import ReshareParticipant
from tkms.node.app import create_app
from tkms.node.config import load_node_config

VICTIM = 1
"""The new index that gets a wrong sub-share."""


class CheatingDealer(ReshareParticipant):
    def _emit(self, message: DkgMessage) -> list[DkgMessage]:
        if isinstance(message, Justification):
            return []  # it cannot justify the wrong sub-share: silence
        if isinstance(message, Deal) and self.old_index is not None:
            victim = self.config.member(VICTIM)
            wrong = ecies.encrypt(
                victim.encryption_key,
                curve.scalar_to_bytes(curve.random_scalar()),
                info=self.config.share_info(self.old_index, VICTIM),
            )
            shares = tuple(
                EncryptedShare.from_record(VICTIM, wrong) if s.recipient == VICTIM else s
                for s in message.shares
            )
            message = sign(replace(message, shares=shares, signature=b""), self._identity.wallet)
        return super()._emit(message)


@contextmanager
def cheating_node(env: dict[str, str]) -> Iterator[str]:
    """A real node (honest in a DKG) whose reshares run :class:`CheatingDealer`."""
    config = load_node_config(env)
    app = create_app(config)
    app.state.threshold.reshare.participant_factory = CheatingDealer
    with serve_in_thread(app, config.server.port) as url:
        yield url
