"""A misbehaving peer for the devnet tests (run as a script): it dials the members and sends them
consensus garbage for a bounded time. With a key outside genesis it plays the outsider; with a member's key
(that member stopped) it plays a member gone bad.

usage: python tests/devnet/rogue.py GENESIS_FILE SEED_HEX SECONDS BOOTSTRAP...
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from ledger.genesis import Genesis
from ledger.keys import PrivateKey
from node.p2p import NetworkConfig, NetworkError, open_network

GARBAGE = b"\x93not a consensus message\xc1" * 4


async def main(genesis_file: str, seed_hex: str, seconds: float, bootstrap: list[str]) -> None:
    genesis = Genesis.from_json(Path(genesis_file).read_text())
    key = PrivateKey(bytes.fromhex(seed_hex))
    members = {m.public_key.raw: m.name for m in genesis.validators}
    config = NetworkConfig(
        seed=key.seed, chain_id=genesis.chain_id, members=members, listen_port=0, bootstrap=tuple(bootstrap)
    )
    async with open_network(config) as network:
        print("ready", flush=True)
        sent = 0
        with trio.move_on_after(seconds):
            while True:
                for member in members:
                    if member == key.public.raw:
                        continue
                    try:
                        network.send(member, GARBAGE + sent.to_bytes(4, "big"))
                        sent += 1
                    except NetworkError:
                        continue
                await trio.sleep(0.01)
        print(f"sent {sent}", flush=True)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:])
