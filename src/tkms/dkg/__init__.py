"""Distributed key generation: Pedersen joint-Feldman with complaints, transport-agnostic.

Public packages (:mod:`.messages`) and secret state (:mod:`.secrets`) never
share an object; :class:`DkgParticipant` is the state machine a node runs;
:func:`run_in_process` drives a whole committee in memory.
:class:`ReshareParticipant` moves the same key to a new committee and epoch.
"""

from tkms.dkg.ceremony import DkgParticipant, Phase
from tkms.dkg.committee import CeremonyConfig, CommitteeMember
from tkms.dkg.errors import (
    DkgAbort,
    DkgEquivocationError,
    DkgError,
    DkgMessageError,
    DkgProtocolError,
)
from tkms.dkg.keyset import (
    KeysetNode,
    KeysetResult,
    SignedKeyset,
    check_keyset_signatures,
    parse_keyset,
)
from tkms.dkg.messages import (
    Complaint,
    Deal,
    DkgMessage,
    Justification,
    KeysetSignature,
    parse_message,
)
from tkms.dkg.reshare import ReshareParticipant
from tkms.dkg.reshare_config import ReshareConfig, single_keyset
from tkms.dkg.secrets import NodeIdentity
from tkms.dkg.simulation import Simulation, make_committee, run_in_process

__all__ = [
    "CeremonyConfig",
    "CommitteeMember",
    "Complaint",
    "Deal",
    "DkgAbort",
    "DkgEquivocationError",
    "DkgError",
    "DkgMessage",
    "DkgMessageError",
    "DkgParticipant",
    "DkgProtocolError",
    "Justification",
    "KeysetNode",
    "KeysetResult",
    "KeysetSignature",
    "NodeIdentity",
    "Phase",
    "ReshareConfig",
    "ReshareParticipant",
    "SignedKeyset",
    "Simulation",
    "check_keyset_signatures",
    "make_committee",
    "parse_keyset",
    "parse_message",
    "run_in_process",
    "single_keyset",
]
