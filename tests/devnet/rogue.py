"""A misbehaving peer for the devnet tests (run as a script), active for a bounded time.

With a member's key (that member stopped) it plays a member gone bad: it joins the network and sends the
other members consensus garbage over its member links. With a key outside genesis it plays the outsider:
it keeps dialing the members' links, which must refuse it.

usage: python tests/devnet/rogue.py GENESIS_FILE SEED_HEX SECONDS BOOTSTRAP... -- MEMBER_LINK...
"""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from ledger.genesis import Genesis
from ledger.keys import PrivateKey
from node.p2p import NetworkConfig, NetworkError, open_network, parse_member_link
from node.p2p.secure_channel import Channel, initiate

GARBAGE = b"\x93not a consensus message\xc1" * 4
DIAL_TIMEOUT = 2.0


async def play_member(config: NetworkConfig, members: list[bytes], seconds: float) -> None:
    async with open_network(config) as network:
        print("ready", flush=True)
        sent = 0
        with trio.move_on_after(seconds):
            while True:
                for member in members:
                    try:
                        network.send(member, GARBAGE + sent.to_bytes(4, "big"))
                        sent += 1
                    except NetworkError:
                        continue
                await trio.sleep(0.01)
        print(f"sent {sent}", flush=True)


async def play_outsider(key: PrivateKey, chain_id: str, links: list[str], seconds: float) -> None:
    print("ready", flush=True)
    refused = 0
    with trio.move_on_after(seconds):
        while True:
            for text in links:
                member_key, address = parse_member_link(text)
                try:
                    with trio.fail_after(DIAL_TIMEOUT):
                        stream = await trio.open_tcp_stream(address.host, address.port)
                        link = await initiate(
                            stream, key, member_key, chain_id, Channel.CONSENSUS, DIAL_TIMEOUT
                        )
                    print(f"accepted by {address}: a member link let an outsider in", flush=True)
                    await link.send_all(GARBAGE)
                    await link.aclose()
                except (NetworkError, OSError, trio.TooSlowError, trio.BrokenResourceError):
                    refused += 1
            await trio.sleep(0.1)
    print(f"refused {refused}", flush=True)


async def main(genesis_file: str, seed_hex: str, seconds: float, addresses: list[str]) -> None:
    genesis = Genesis.from_json(Path(genesis_file).read_text())
    key = PrivateKey(bytes.fromhex(seed_hex))
    members = {m.public_key.raw: m.name for m in genesis.validators}
    split = addresses.index("--")
    bootstrap, links = addresses[:split], addresses[split + 1 :]
    if key.public.raw not in members:
        await play_outsider(key, genesis.chain_id, links, seconds)
        return
    config = NetworkConfig(
        seed=key.seed,
        chain_id=genesis.chain_id,
        members=members,
        listen_port=0,
        bootstrap=tuple(bootstrap),
        member_links=tuple(links),
    )
    others = [member for member in members if member != key.public.raw]
    await play_member(config, others, seconds)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:])
