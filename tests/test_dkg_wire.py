"""DKG messages and keysets on the wire: strict parsing, canonical round trips, signatures."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.dkg_faults import bad_share_dealer, with_faults
from tests.vectors import load
from tkms.crypto import curve, eip712
from tkms.crypto.encoding import parse_hex
from tkms.dkg import (
    CeremonyConfig,
    DkgMessageError,
    KeysetNode,
    KeysetResult,
    check_keyset_signatures,
    parse_keyset,
    parse_message,
    run_in_process,
)

CHAIN_ID = 421614


def test_json_round_trip_keeps_every_message_verifiable() -> None:
    sim = run_in_process(4, 2, participant_factory=with_faults({1: bad_share_dealer(2)}), wire=True)
    assert sim.succeeded
    seen = 0
    for p in sim.participants.values():
        for kind in ("deal", "complaint", "justification", "keysetSignature"):
            store = {
                "deal": p._deals,
                "complaint": p._complaints,
                "justification": p._justifications,
                "keysetSignature": p._keyset_sigs,
            }[kind]
            for message in store.values():
                back = parse_message(json.loads(json.dumps(message.to_json())))
                assert back.to_json() == message.to_json()
                assert back.transcript().digest() == message.transcript().digest()
                seen += 1
    assert seen > 0


def test_keyset_matches_the_eip712_vector() -> None:
    case = next(c for c in load("eip712")["cases"] if c["name"] == "Keyset")
    msg = case["message"]
    keyset = KeysetResult(
        epoch=msg["epoch"],
        threshold=msg["threshold"],
        public_key=curve.parse_point(parse_hex(msg["publicKey"])),
        nodes=tuple(
            KeysetNode(
                n["index"],
                parse_hex(n["signer"]),
                curve.parse_point(parse_hex(n["verificationKey"])),
            )
            for n in msg["nodes"]
        ),
    )
    assert keyset.eip712_message() == msg
    chain_id = case["domain"]["chainId"]
    assert keyset.digest(chain_id) == parse_hex(case["digest"])
    signature = parse_hex(case["signature"])
    signer = parse_hex(case["signer"])
    assert eip712.recover(eip712.keyset_domain(chain_id), eip712.KEYSET, msg, signature) == signer


def test_keyset_json_and_signature_check() -> None:
    sim = run_in_process(4, 3, chain_id=CHAIN_ID)
    assert sim.succeeded
    keyset = sim.participants[1].keyset
    assert keyset is not None
    sigs = sim.participants[1].keyset_signatures
    body = keyset.to_json(chain_id=CHAIN_ID, signatures=sigs)
    parsed = parse_keyset(json.loads(json.dumps(body)))
    assert parsed.chain_id == CHAIN_ID and parsed.signatures == sigs
    for key in ("\u00b2", "\u0661", "01"):  # isdigit() takes the first two; int("²") raises
        odd = {**body, "signatures": {key: next(iter(body["signatures"].values()))}}
        with pytest.raises(DkgMessageError, match="decimal node indices"):
            parse_keyset(odd)
    assert parsed.keyset.digest(CHAIN_ID) == keyset.digest(CHAIN_ID)
    assert parsed.keyset.is_consistent()
    everyone = range(1, 5)
    assert not check_keyset_signatures(
        parsed.keyset, chain_id=CHAIN_ID, signatures=sigs, required=everyone
    )
    # Missing, swapped, or for another chain: named.
    fewer = {i: s for i, s in sigs.items() if i != 2}
    assert check_keyset_signatures(
        keyset, chain_id=CHAIN_ID, signatures=fewer, required=everyone
    ) == (2,)
    swapped = {**sigs, 1: sigs[3], 3: sigs[1]}
    assert check_keyset_signatures(
        keyset, chain_id=CHAIN_ID, signatures=swapped, required=everyone
    ) == (1, 3)
    assert check_keyset_signatures(
        keyset, chain_id=CHAIN_ID + 1, signatures=sigs, required=everyone
    ) == (1, 2, 3, 4)
    # A verification key moved off the polynomial fails the §3.1 check.
    bent = replace(
        keyset,
        nodes=(replace(keyset.nodes[0], verification_key=curve.GENERATOR), *keyset.nodes[1:]),
    )
    assert not bent.is_consistent()


# --- malformed wire input --------------------------------------------------------

_SAMPLE = run_in_process(3, 2, participant_factory=with_faults({1: bad_share_dealer(2)}))


def _samples() -> list[dict[str, Any]]:
    p = _SAMPLE.participants[3]
    out: list[dict[str, Any]] = []
    for store in (p._deals, p._complaints, p._justifications, p._keyset_sigs):
        out.append(next(iter(store.values())).to_json())
    return out


def _valid(kind: str) -> dict[str, Any]:
    sample = next(s for s in _samples() if s["type"] == kind)
    copied: dict[str, Any] = json.loads(json.dumps(sample))
    return copied


MALFORMED: list[tuple[str, Callable[[dict[str, Any]], object]]] = [
    ("not an object", lambda m: [m]),
    ("unknown type", lambda m: {**m, "type": "dael"}),
    ("missing type", lambda m: {k: v for k, v in m.items() if k != "type"}),
    ("extra key", lambda m: {**m, "extra": 1}),
    ("missing signature", lambda m: {k: v for k, v in m.items() if k != "signature"}),
    ("bool sender", lambda m: {**m, "sender": True}),
    ("zero sender", lambda m: {**m, "sender": 0}),
    ("huge sender", lambda m: {**m, "sender": 70000}),
    ("string sender", lambda m: {**m, "sender": "1"}),
    ("float sender", lambda m: {**m, "sender": 1.0}),
    ("short session", lambda m: {**m, "sessionId": m["sessionId"][:-2]}),
    ("non-hex session", lambda m: {**m, "sessionId": "0x" + "zz" * 32}),
    ("spaced session", lambda m: {**m, "sessionId": "0x" + "ab " * 21 + "ab" * 11}),
    ("odd signature", lambda m: {**m, "signature": m["signature"] + "0"}),
    ("null signature", lambda m: {**m, "signature": None}),
]

DEAL_MALFORMED: list[tuple[str, Callable[[dict[str, Any]], object]]] = [
    ("no commitments", lambda m: {**m, "commitments": []}),
    ("commitments not a list", lambda m: {**m, "commitments": "0x02"}),
    ("commitment off curve", lambda m: {**m, "commitments": ["0x02" + "ff" * 32]}),
    ("uncompressed commitment", lambda m: {**m, "commitments": ["0x04" + "11" * 32]}),
    ("shares unsorted", lambda m: {**m, "shares": list(reversed(m["shares"]))}),
    ("shares duplicated", lambda m: {**m, "shares": [m["shares"][0]] * 2}),
    ("share not object", lambda m: {**m, "shares": [1]}),
    ("share extra key", lambda m: {**m, "shares": [{**m["shares"][0], "x": 1}]}),
    ("share too short", lambda m: {**m, "shares": [{**m["shares"][0], "sealed": "0x0200"}]}),
    (
        "share bad ephemeral prefix",
        lambda m: {**m, "shares": [{**m["shares"][0], "sealed": "0x05" + "00" * 92}]},
    ),
    ("share int sealed", lambda m: {**m, "shares": [{**m["shares"][0], "sealed": 5}]}),
    ("share bool recipient", lambda m: {**m, "shares": [{**m["shares"][0], "recipient": False}]}),
    ("too many commitments", lambda m: {**m, "commitments": m["commitments"] * 5000}),
]

OTHER_MALFORMED: list[tuple[str, str, Callable[[dict[str, Any]], object]]] = [
    ("complaint", "accused unsorted", lambda m: {**m, "accused": [3, 1]}),
    ("complaint", "accused dupes", lambda m: {**m, "accused": [1, 1]}),
    ("complaint", "accused strings", lambda m: {**m, "accused": ["1"]}),
    ("complaint", "short digest", lambda m: {**m, "dealsDigest": "0x00"}),
    (
        "justification",
        "zero share",
        lambda m: {**m, "revealed": [{"recipient": 2, "share": "0x" + "00" * 32}]},
    ),
    (
        "justification",
        "share ≥ n",
        lambda m: {**m, "revealed": [{"recipient": 2, "share": "0x" + "ff" * 32}]},
    ),
    ("justification", "revealed not list", lambda m: {**m, "revealed": {}}),
    ("keysetSignature", "short keyset sig", lambda m: {**m, "keysetSignature": "0x00"}),
    ("keysetSignature", "int digest", lambda m: {**m, "keysetDigest": 5}),
]


@pytest.mark.parametrize("kind", ["deal", "complaint", "justification", "keysetSignature"])
@pytest.mark.parametrize(("label", "mutate"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_common_fields(
    kind: str, label: str, mutate: Callable[[dict[str, Any]], object]
) -> None:
    with pytest.raises(DkgMessageError):
        parse_message(mutate(_valid(kind)))


@pytest.mark.parametrize(("label", "mutate"), DEAL_MALFORMED, ids=[m[0] for m in DEAL_MALFORMED])
def test_malformed_deals(label: str, mutate: Callable[[dict[str, Any]], object]) -> None:
    with pytest.raises(DkgMessageError):
        parse_message(mutate(_valid("deal")))


@pytest.mark.parametrize(
    ("kind", "label", "mutate"), OTHER_MALFORMED, ids=[m[1] for m in OTHER_MALFORMED]
)
def test_malformed_other_messages(
    kind: str, label: str, mutate: Callable[[dict[str, Any]], object]
) -> None:
    with pytest.raises(DkgMessageError):
        parse_message(mutate(_valid(kind)))


def test_samples_parse_and_accept_uppercase_hex_without_prefix() -> None:
    for sample in _samples():
        parse_message(sample)
    deal = _valid("deal")
    deal["sessionId"] = deal["sessionId"][2:].upper()
    assert parse_message(deal).session_id == parse_hex(_valid("deal")["sessionId"])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(value: object, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value[:2]):
            out += _paths(v, (*prefix, i))
    return out


def _set(value: Any, path: tuple[Any, ...], new: object, delete: bool) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
        if delete and not rest:
            copy.pop(head, None)
        else:
            copy[head] = _set(value[head], rest, new, delete)
        return copy
    copy_list = list(value)
    if delete and not rest:
        copy_list.pop(head)
    else:
        copy_list[head] = _set(value[head], rest, new, delete)
    return copy_list


@settings(max_examples=50, deadline=None)
@given(data=st.data(), new=json_values, delete=st.booleans())
def test_fuzzed_messages_raise_only_dkg_message_error(
    data: st.DataObject, new: object, delete: bool
) -> None:
    sample = data.draw(st.sampled_from(_samples()))
    path = data.draw(st.sampled_from(_paths(sample)))
    mutated = _set(sample, path, new, delete)
    try:
        parsed = parse_message(mutated)
    except DkgMessageError:
        return
    # Whatever is accepted is canonical: it re-encodes to the same transcript.
    again = parse_message(json.loads(json.dumps(parsed.to_json())))
    assert again.transcript().digest() == parsed.transcript().digest()


def _keyset_and_config_samples() -> list[dict[str, Any]]:
    p = _SAMPLE.participants[1]
    assert p.keyset is not None
    return [
        p.keyset.to_json(chain_id=CHAIN_ID, signatures=p.keyset_signatures),
        _SAMPLE.config.to_json(),
    ]


def test_config_round_trip() -> None:
    config = CeremonyConfig.from_json(json.loads(json.dumps(_SAMPLE.config.to_json())))
    assert config.session_id == _SAMPLE.config.session_id


@settings(max_examples=50, deadline=None)
@given(data=st.data(), new=json_values, delete=st.booleans())
def test_fuzzed_keysets_and_configs_raise_only_dkg_message_error(
    data: st.DataObject, new: object, delete: bool
) -> None:
    sample = data.draw(st.sampled_from(_keyset_and_config_samples()))
    mutated = _set(sample, data.draw(st.sampled_from(_paths(sample))), new, delete)
    try:
        if "signatures" in sample:
            signed = parse_keyset(mutated)
            body = signed.keyset.to_json(chain_id=signed.chain_id, signatures=signed.signatures)
            again = parse_keyset(json.loads(json.dumps(body)))
            assert again.keyset.digest(again.chain_id) == signed.keyset.digest(signed.chain_id)
        else:
            config = CeremonyConfig.from_json(mutated)
            back = CeremonyConfig.from_json(json.loads(json.dumps(config.to_json())))
            assert back.session_id == config.session_id
    except DkgMessageError:
        return
