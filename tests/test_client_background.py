"""What a client does in the background from its creation (issue 13: the first call).

The RSA key is made, its authorization signed and, given ``material_file``, kept in
its 0600 file before the first call asks for them; a step that fails there is done
again by the first call, which raises what it raised before there was a background;
a closed client starts nothing more. Over the real gateway and v0 node of conftest
(single-node mode, the cheapest real stack).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CHAIN_ID, NodeKeys
from tests.gatewaynet import NOX_COMPUTE, single_node_gateway
from tests.procs import Service
from tkms.client import AsyncClient, Client
from tkms.client.material import load_material
from tkms.crypto import curve
from tkms.crypto.wallet import Wallet

SLOW_KEY = 4096  # bits: a key that takes long enough to make that a call can come first


@pytest.fixture(scope="module")
def gateway(
    v0_node: Service, node_keys: NodeKeys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    with single_node_gateway(v0_node, node_keys, Path(tmp_path_factory.mktemp("bg"))) as g:
        yield g


def settings(keys: NodeKeys, **kw: Any) -> dict[str, Any]:
    return {
        "chain_id": CHAIN_ID,
        "gateway_signer": keys.gateway.address,
        "verifying_contract": NOX_COMPUTE,
        "kms_public_key": curve.encode_point(keys.public_key),
        **kw,
    }


def test_the_authorization_is_signed_and_kept_before_the_first_call(
    gateway: Service, node_keys: NodeKeys, tmp_path: Path
) -> None:
    wallet, path = Wallet.generate(), tmp_path / "alice.material"
    with Client(gateway.url, wallet, **settings(node_keys, material_file=path)) as alice:
        assert alice.wait_ready(60)
        assert path.stat().st_mode & 0o777 == 0o600  # written, private, before any call
        kept = load_material(path, wallet, alice.core._domain(), alice.core._now())
        assert kept is not None  # ours, checked as a stranger's file is
        secret = alice.encrypt(1000, "uint256")
        assert alice.decrypt(secret) == 1000
        material, fresh = alice.core.material()
        assert not fresh and material.authorization == kept.authorization  # the one it kept
    with Client(gateway.url, wallet, **settings(node_keys, material_file=path)) as again:
        assert again.decrypt(secret) == 1000  # another process would reuse it too
        assert again.core.material()[0].authorization == kept.authorization


def test_a_file_the_background_cannot_write_fails_the_first_call_as_before(
    gateway: Service, node_keys: NodeKeys, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the material's directory would be")
    path = blocker / "keys" / "bob.material"
    with Client(gateway.url, Wallet.generate(), **settings(node_keys)) as owner:
        secret = owner.encrypt(5, "uint8")
        with Client(
            gateway.url, owner.core.wallet, **settings(node_keys, material_file=path)
        ) as bob:
            assert bob.wait_ready(60)  # the background tried, and failed
            with pytest.raises(NotADirectoryError):  # the first call writes it, as before
                bob.decrypt(secret)
            with pytest.raises(NotADirectoryError):  # and so does every later call
                bob.decrypt(secret)
            blocker.unlink()
            assert bob.decrypt(secret) == 5  # once it can be written, it is
            assert path.stat().st_mode & 0o777 == 0o600


def test_a_closed_client_starts_no_more_background_work(
    gateway: Service, node_keys: NodeKeys, tmp_path: Path
) -> None:
    path = tmp_path / "carol.material"
    carol = Client(gateway.url, Wallet.generate(), **settings(node_keys, material_file=path))
    carol.close()  # long before a 4096-bit key is made
    written_before = path.exists()
    assert carol.wait_ready(120)
    assert path.exists() == written_before  # no authorization signed nor kept after close()
    assert carol._http._idle == []  # nor the keyset's connection kept


def test_a_closed_client_s_key_is_not_signed(
    gateway: Service, node_keys: NodeKeys, tmp_path: Path
) -> None:
    path = tmp_path / "dave.material"
    dave = Client(
        gateway.url, Wallet.generate(), **settings(node_keys, material_file=path, rsa_bits=SLOW_KEY)
    )
    made_before = dave.core.wait_ready(0)
    dave.close()
    assert dave.wait_ready(120)
    assert made_before or not path.exists()


def test_the_async_client_waits_for_its_key_without_blocking_the_loop(
    gateway: Service, node_keys: NodeKeys
) -> None:
    async def scenario() -> None:
        kw = settings(node_keys, rsa_bits=SLOW_KEY)
        async with AsyncClient(gateway.url, Wallet.generate(), **kw) as erin:
            secret = await erin.encrypt(9, "uint16")
            assert await erin.keyset() is None  # single-node mode, known before the call
            made_before = erin.core.wait_ready(0)
            first = asyncio.create_task(erin.decrypt(secret))
            await asyncio.sleep(0)  # the call runs up to its first wait
            # Had it waited for the key on the loop's thread, the key would be made by now.
            assert made_before or not erin.core.wait_ready(0)
            assert await first == 9
            await erin.wait_ready()

    asyncio.run(scenario())


def test_a_closed_async_client_stops_its_background_work(
    gateway: Service, node_keys: NodeKeys, tmp_path: Path
) -> None:
    path = tmp_path / "frank.material"

    async def scenario() -> AsyncClient:
        kw = settings(node_keys, material_file=path, rsa_bits=SLOW_KEY)
        frank = AsyncClient(gateway.url, Wallet.generate(), **kw)
        await frank.aclose()
        return frank

    frank = asyncio.run(scenario())
    made_before = path.exists()
    assert frank.core.wait_ready(120)
    assert made_before or not path.exists()
