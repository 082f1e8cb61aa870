"""``GET /v1/compute/operands``: the runner's operands in threshold mode (docs/runner.md).

No single party can make an operand's ``encryptedSharedSecret`` without
learning it, so the answer carries, for every operand, the record and each
node's sealed partial, as ``/v1/secrets`` does for one handle, fetched with
one batch request per node (docs/batch-delegation.md). A node's batch is
forwarded exactly as it signed it (its ``proof`` covers the whole list under
the runner's salt): the runner checks every node signature and DLEQ proof
and combines (``tkms.client.Runner``).
"""

from __future__ import annotations

import logging

from tkms.crypto import eip712
from tkms.crypto.encoding import to_hex
from tkms.gateway.batch_fanout import NotEnoughBatches, gather_batches
from tkms.gateway.compute import Compute
from tkms.gateway.served_chain import not_configured
from tkms.gateway.service import Answer, NotEnoughNodes
from tkms.gateway.wire import signed
from tkms.protocol.batch_delegation import OperandRecord, runner_fields

log = logging.getLogger("tkms.gateway")


async def operands_v1(compute: Compute, salt_raw: str | None, authorization: str | None) -> Answer:
    chain, salt, statement, records = await compute.statement_records(salt_raw, authorization)
    fanout = chain.kms.fanout
    if fanout is None:
        raise not_configured("this gateway fronts a single node: use GET /v0/compute/operands")
    keyset = (await chain.keyset()).keyset
    keys = [to_hex(r.ephemeral_pubkey) for r in records]
    try:
        result = await gather_batches(
            fanout,
            keys,
            statement.rsa_public_key,
            salt,
            keyset=keyset,
            # What each user-mode node checks itself (docs/node-authorization.md).
            context=runner_fields(
                authorization or "",
                [OperandRecord(r.handle, r.iv, r.ciphertext, r.binding_signature) for r in records],
            ),
        )
    except NotEnoughBatches as exc:
        failures = {i: str(why) for i, why in exc.result.failures.items()}
        log.warning("chain %d: not enough batches: %s", chain.chain_id, sorted(failures.items()))
        stale = any(f.other_epoch is not None for f in exc.result.failures.values())
        if chain.kms.keysets is not None and stale:
            chain.kms.keysets.invalidate()
        raise NotEnoughNodes(exc.threshold, len(exc.result.batches), failures) from None
    payload = {
        "epoch": keyset.epoch,
        "threshold": keyset.threshold,
        "operands": [
            {
                "handle": to_hex(r.handle),
                "ciphertext": to_hex(r.ciphertext),
                "iv": to_hex(r.iv),
                "ephemeralPubKey": key,
            }
            for r, key in zip(records, keys, strict=True)
        ],
        "batches": [
            {"index": b.index, "encryptedPartials": list(b.encrypted_partials), "proof": b.proof}
            for b in result.batches
        ],
    }
    body = signed(chain.wallet, chain.chain_id, salt, eip712.COMPUTE_THRESHOLD_OPERANDS, payload)
    return Answer(body, {"kms": result.seconds})
