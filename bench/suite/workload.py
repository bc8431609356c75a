"""The pre-signed market mix and the open-loop schedule it is sent on.

Every load account belongs to one member: its transactions always go to that member, in nonce order, so its
nonce chain reaches one mempool in order and never waits on another member's gossip. A batch holds the next
transaction of consecutive accounts of one member (so a batch carries one nonce of each of many senders),
and batches go round-robin over the members. The mix cycles per account through transfers, offers, bids and
cancels of the account's own latest order; every transaction is valid when signed (known class and region,
an open window, an unexpired bid, escrow well within the balance), though a cancel may find its order
already filled (a failure receipt that still commits). Signing happens in `plan`, before a step's clock
starts.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import deque
from dataclasses import dataclass, field

from ledger.keys import PrivateKey
from ledger.tx import BidBody, Body, Cancel, OfferBody, Transfer, sign_transaction
from node.rpc.limits import MAX_SUBMIT_TXS

MIX = ("transfer", "offer", "bid", "transfer", "offer", "transfer", "bid", "cancel", "transfer", "transfer")
# Batch size follows the rate up to the cap: at most this many batches a second below the cap, so arrivals are
# nearly smooth (a batch every 50 ms) while each HTTP request and each relayed batch still carries several
# transactions at moderate rates.
BATCHES_PER_S = 20
OFFER_PRICES = (100, 180)  # micro-credits per unit-hour; bids reach below and above, so some cross
BID_PRICES = (60, 140)
WINDOW_S = 7 * 86_400
BID_LIFE_S = 3_600


@dataclass
class LoadAccount:
    key: PrivateKey
    member: int
    access_key: bytes
    nonce: int = 0
    orders: deque[bytes] = field(default_factory=lambda: deque(maxlen=8))


@dataclass
class Batch:
    """`count` transactions sent at `offset_s` after the step starts to `member` (planned; the sender may
    redirect it if that member is down). `body` is the whole JSON-RPC request, encoded in advance."""

    index: int
    offset_s: float
    member: int
    hashes: list[bytes]
    kinds: list[str]
    hexes: list[str]
    body: bytes

    @property
    def count(self) -> int:
        return len(self.hashes)


def batch_size(rate: float, cap: int = MAX_SUBMIT_TXS) -> int:
    return max(1, min(cap, MAX_SUBMIT_TXS, round(rate / BATCHES_PER_S)))


def submit_body(hexes: list[str], request_id: int) -> bytes:
    params: dict[str, object] = {"txs": hexes, "wait": "none"}
    request = {"jsonrpc": "2.0", "id": request_id, "method": "tx_submit", "params": params}
    return json.dumps(request, separators=(",", ":")).encode()


class MarketMix:
    def __init__(
        self,
        keys: list[PrivateKey],
        members: int,
        chain_id: str,
        classes: tuple[str, ...],
        regions: tuple[str, ...],
        seed: int = 5,
        batch_cap: int = MAX_SUBMIT_TXS,
    ) -> None:
        if len(keys) < members:
            raise ValueError(f"{len(keys)} load accounts cannot cover {members} members")
        self.chain_id = chain_id
        self.classes = classes
        self.regions = regions
        self.random = random.Random(seed)
        self.members = members
        self.batch_cap = batch_cap
        self.accounts = [LoadAccount(k, i % members, k.public.x25519()) for i, k in enumerate(keys)]
        self.addresses = [k.public.raw for k in keys]
        self._of_member = [[a for a in self.accounts if a.member == m] for m in range(members)]
        self._cursor = [0] * members
        self._batches = 0

    def plan(self, rate: float, seconds: float) -> list[Batch]:
        """Sign `rate * seconds` transactions into the batches of an open-loop schedule at `rate` tx/s."""
        total = max(1, round(rate * seconds))
        size = batch_size(rate, self.batch_cap)
        now = int(time.time())
        batches = []
        for k in range(math.ceil(total / size)):
            member = k % self.members
            count = min(size, total - k * size)
            signed = [self._next(member, now) for _ in range(count)]
            hexes = [raw.hex() for _, _, raw in signed]
            self._batches += 1
            batches.append(
                Batch(
                    index=k,
                    offset_s=k * size / rate,
                    member=member,
                    hashes=[h for h, _, _ in signed],
                    kinds=[kind for _, kind, _ in signed],
                    hexes=hexes,
                    body=submit_body(hexes, self._batches),
                )
            )
        return batches

    def _next(self, member: int, now: int) -> tuple[bytes, str, bytes]:
        accounts = self._of_member[member]
        account = accounts[self._cursor[member] % len(accounts)]
        self._cursor[member] += 1
        kind = MIX[account.nonce % len(MIX)]
        if kind == "cancel" and not account.orders:
            kind = "transfer"
        body = self._body(kind, account, now)
        tx = sign_transaction(account.key, self.chain_id, account.nonce, body)
        account.nonce += 1
        if kind in ("offer", "bid"):
            account.orders.append(tx.hash)
        return tx.hash, kind, tx.encoded

    def _body(self, kind: str, account: LoadAccount, now: int) -> Body:
        pick = self.random
        if kind == "offer":
            return OfferBody(
                pick.choice(self.classes),
                pick.choice(self.regions),
                pick.randint(1, 8),
                pick.randint(*OFFER_PRICES),
                now - 3_600,
                now + WINDOW_S,
            )
        if kind == "bid":
            return BidBody(
                pick.choice(self.classes),
                pick.choice(self.regions),
                pick.randint(1, 4),
                pick.randint(*BID_PRICES),
                pick.randint(600, 3_600),
                now + BID_LIFE_S,
                account.access_key,
            )
        if kind == "cancel":
            return Cancel(account.orders.pop())
        return Transfer(pick.choice(self.addresses), pick.randint(1, 1_000))
