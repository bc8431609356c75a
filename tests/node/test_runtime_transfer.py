"""The runtime's grouping of the replica's actions: runs of Deliver (state transfer) are applied together."""

from __future__ import annotations

from consensus.events import Action, Broadcast, Deliver, FetchBlocks, Persist, RequestProposal, SetTimer
from ledger.votes import Certificate
from node.runtime import Transferred, _with_transfers


def deliver(height: int) -> Deliver:
    digest = bytes([height]) * 32
    return Deliver(height, 0, b"block-%d" % height, digest, Certificate(height, 0, digest, ()))


def test_runs_of_deliveries_become_one_transfer_and_the_order_is_kept() -> None:
    actions: list[Action] = [
        deliver(1),
        deliver(2),
        deliver(3),
        RequestProposal(4, 0),
        FetchBlocks(4, (b"\x01" * 32,)),
        SetTimer(10),
    ]
    grouped = _with_transfers(actions)
    assert grouped == [Transferred([deliver(1), deliver(2), deliver(3)]), *actions[3:]]


def test_a_lone_delivery_stays_as_it_is() -> None:
    actions: list[Action] = [Persist(b"record"), Broadcast(b"commit"), deliver(7), RequestProposal(8, 0)]
    assert _with_transfers(actions) == actions
    between: list[Action] = [deliver(1), SetTimer(5), deliver(2), deliver(3)]
    assert _with_transfers(between) == [deliver(1), SetTimer(5), Transferred([deliver(2), deliver(3)])]
