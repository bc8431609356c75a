"""A market round on a running devnet, printed step by step for a person to follow.

Providers offer capacity, consumers bid, the block clears each book at one uniform price, leases appear, a
provider seals access credentials to its buyer (only the buyer's key opens them), and balances settle.
Transactions go to different members, and each step waits for the commit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger.keys import PrivateKey
from ledger.tx import BidBody, Body, Close, Grant, OfferBody, sign_transaction
from node import devnet
from node.commands.base import CliError
from node.commands.lease import open_grant, seal_credentials
from node.commands.rpc_client import RpcClient

CLASS = "vcpu"
REGION = "eu-west"
HOUR = 3600
CREDIT = 1_000_000  # micro-credits


class Demo:
    def __init__(self, directory: Path, say: Callable[[str], None]) -> None:
        document = devnet.load(directory)
        self.say = say
        self.clients = [RpcClient(node["rpc_url"], timeout=60.0) for node in document["nodes"]]
        self.names = [node["name"] for node in document["nodes"]]
        accounts = {a["name"]: a for a in document["accounts"]}
        self.keys = {
            name: PrivateKey.from_key_file(Path(a["key_file"]).read_text()) for name, a in accounts.items()
        }
        self.chain_id = self.clients[0].call("node_status")["chain_id"]
        self._turn = 0
        self._height = 0

    def reader(self, index: int) -> RpcClient:
        """Member `index`'s client, once it has applied every block this demo waited for (members apply a
        committed block at slightly different moments)."""
        client = self.clients[index]
        devnet.wait_until(
            lambda: client.call("chain_head")["height"] >= self._height,
            30.0,
            f"{self.names[index]} to catch up",
        )
        return client

    def client(self) -> tuple[str, RpcClient]:
        """Round-robin over the members, to show that any member takes transactions."""
        index = self._turn % len(self.clients)
        self._turn += 1
        return self.names[index], self.clients[index]

    def submit(self, who: str, body: Body) -> dict[str, Any]:
        key = self.keys[who]
        node, client = self.client()
        nonce = client.call("account_get", {"address": key.address})["next_nonce"]
        tx = sign_transaction(key, self.chain_id, nonce, body)
        result = client.call("tx_submit", {"tx": tx.encoded.hex(), "wait": "commit"})
        self._height = max(self._height, result.get("height") or 0)
        receipt = result.get("receipt") or {}
        self.say(
            f"    {who:<11} -> {node}: {tx.kind.name.lower():<8} tx {tx.hash.hex()[:12]}  committed at "
            f"height {result.get('height')}, receipt {receipt.get('status', '?')}"
        )
        return result

    def balances(self, names: list[str]) -> None:
        for name in names:
            account = self.reader(0).call("account_get", {"address": self.keys[name].address})
            self.say(
                f"    {name:<11} balance {account['balance'] / CREDIT:>14,.6f}  escrow "
                f"{account['escrow'] / CREDIT:>12,.6f} credits"
            )

    def run(self) -> None:
        say = self.say
        status = [c.call("node_status") for c in self.clients]
        say(f"1. The federation: {len(status)} members of chain {self.chain_id}")
        for s in status:
            say(f"    {s['node_name']:<6} height {s['height']:>5}  view {s['view']}  peers {s['peers']}")
        providers = ["provider-0", "provider-1", "provider-2"]
        consumers = ["consumer-0", "consumer-1", "consumer-2"]
        say("\n2. Balances before the round")
        self.balances(providers[:2] + consumers[:2])

        now = int(time.time())
        say(f"\n3. Providers offer spare {CLASS} in {REGION} (minimum price in credits per unit-hour)")
        offers = [("provider-0", 8, 90), ("provider-1", 6, 120), ("provider-2", 4, 200)]
        for who, quantity, price in offers:
            say(f"    {who} offers {quantity} {CLASS} at >= {price}")
            window = (now - 60, now + 4 * HOUR)
            self.submit(who, OfferBody(CLASS, REGION, quantity, price * CREDIT, *window, None))

        say("\n4. Consumers bid (max price per unit-hour); each bid escrows its maximum cost")
        bids = [("consumer-0", 6, 150), ("consumer-1", 5, 130), ("consumer-2", 3, 100)]
        bid_ids = {}
        for who, quantity, price in bids:
            key = self.keys[who]
            say(f"    {who} bids for {quantity} {CLASS} for 1h at <= {price}")
            body = BidBody(CLASS, REGION, quantity, price * CREDIT, HOUR, now + HOUR, key.public.x25519())
            result = self.submit(who, body)
            bid_ids[who] = result["hash"]

        say("\n5. Each block cleared the book: one price for every trade of a round")
        trades = self.reader(0).call("market_trades", {"limit": 100})["trades"]
        for t in (t for t in trades if t["bid_id"] in bid_ids.values()):
            say(
                f"    height {t['height']}: lease {t['lease_id'][:12]}  {t['quantity']} {t['resource_class']}"
                f" at {t['price'] / CREDIT:g} credits/unit-hour  buyer {self.name_of(t['buyer'])}  "
                f"provider {self.name_of(t['provider'])}"
            )
        price = self.reader(0).call("market_price", {"class": CLASS, "region": REGION})
        say(
            f"    last clearing price of {CLASS}/{REGION}: {price['last_price'] / CREDIT:g} credits/unit-hour"
        )
        book = self.reader(1).call("market_book", {"class": CLASS, "region": REGION})
        levels = {
            side: [(lv["price"] // CREDIT, lv["quantity"]) for lv in book[side]]
            for side in ("bids", "offers")
        }
        say(f"    what rests in the book (price, quantity): bids {levels['bids']}  offers {levels['offers']}")

        buyer = "consumer-0"
        leases = self.reader(2).call("lease_list", {"owner": self.keys[buyer].address})["leases"]
        if not leases:
            say(f"\n(no lease for {buyer}: nothing crossed)")
            return
        lease = next((x for x in leases if x["bid_id"] == bid_ids[buyer]), leases[0])
        provider = next(n for n in providers if self.keys[n].address == lease["provider"])
        escrow = lease["escrow"] / CREDIT
        lease_name = lease["lease_id"][:12]
        say(f"\n6. {buyer}'s lease {lease_name} from {provider}: {lease['status']}, escrow {escrow:g}")
        credentials = (
            f"ssh -i lease-key ubuntu@10.20.0.{7 + self._turn}  # token {lease['lease_id'][:8]}".encode()
        )
        sealed = seal_credentials(bytes.fromhex(lease["access_key"]), credentials)
        say(f"    {provider} seals the credentials to the buyer's key and posts the grant on-chain")
        self.submit(provider, Grant(bytes.fromhex(lease["lease_id"]), sealed))
        granted = self.reader(3).call("lease_get", {"id": lease["lease_id"]})
        sealed_size = len(granted["sealed_grant"]) // 2
        say(f"    the chain holds {sealed_size} sealed bytes; the lease is now {granted['status']}")
        opened = open_grant(self.keys[buyer], bytes.fromhex(granted["sealed_grant"]))
        say(f"    {buyer} opens it: {opened.decode()}")
        try:
            open_grant(self.keys["consumer-1"], bytes.fromhex(granted["sealed_grant"]))
            say("    consumer-1 could open it too (this must not happen)")
        except CliError:
            say("    consumer-1 tries with its own key: it cannot open the grant")

        say(f"\n7. {buyer} closes the lease early; the escrow is split pro rata and access is revoked")
        self.submit(buyer, Close(bytes.fromhex(lease["lease_id"]), "demo finished"))
        closed = self.reader(0).call("lease_get", {"id": lease["lease_id"]})
        say(f"    lease {closed['lease_id'][:12]} is {closed['status']}")

        say("\n8. Balances: unused bid escrow was refunded at the match; the closed lease paid its provider")
        say("   pro rata; open leases pay their providers when they end")
        self.balances([provider, *consumers[:2]])
        height = min(c.call("chain_head")["height"] for c in self.clients)
        hashes = {c.call("chain_block", {"height": height})["hash"] for c in self.clients}
        agree = "yes" if len(hashes) == 1 else "NO"
        say(f"\n9. All {len(self.clients)} members hold the same block at height {height}: {agree}")

    def name_of(self, address: str) -> str:
        return next((name for name, key in self.keys.items() if key.address == address), address[:14])


def run_demo(directory: Path, say: Callable[[str], None] = print) -> None:
    Demo(directory, say).run()
