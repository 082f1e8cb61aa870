"""One side of bench/sdk_decrypt.py's A/B: a warm ``Client`` decrypting on command.

    PYTHONPATH=OTHER/src .venv/bin/python bench/sdk_worker.py DEVNET_JSON

Run by bench/sdk_decrypt.py ``--baseline DIR``, once with DIR's ``src/`` first on
``PYTHONPATH`` and once with this checkout's, so that each side's SDK is the only
code that differs. It uses the public API only (any tkms checkout has it): it
encrypts and registers a handle of its own, warms up (key, authorization,
keyset, connection), prints ``ready``, then for each line ``N`` it reads,
decrypts ``N`` times and prints this process's CPU seconds per decryption; an
empty line or end of input ends it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import tkms
from tkms.client import Client


def main() -> None:
    with Client.from_devnet(Path(sys.argv[1])) as client:
        secret = client.encrypt(10**18, "uint256")
        client.register_on_chain(secret)
        for _ in range(10):
            assert client.decrypt(secret.handle) == 10**18
        print("ready", Path(tkms.__file__).parent, flush=True)
        for line in sys.stdin:
            calls = int(line or 0)
            if calls <= 0:
                break
            start = time.process_time()
            for _ in range(calls):
                client.decrypt(secret.handle)
            print((time.process_time() - start) / calls, flush=True)


if __name__ == "__main__":
    main()
