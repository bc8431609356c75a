"""The open-loop sender: batches leave on their schedule, whatever the replies do.

One dispatcher thread releases each batch at its scheduled time into a queue; a pool of sender threads, each
with a keep-alive connection per member, takes them at once. A slow reply holds one sender, not the
schedule; only when every sender is busy does a batch leave late, and that lateness is recorded. A batch
whose member is down goes to the next live member. The submission time of a transaction is the wall clock
just before its batch's request is written.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.suite.rpc import KeepAliveRpc, RpcFailure, result_of
from bench.suite.workload import Batch, submit_body

MEMPOOL_FULL = -32002
SUBMIT_TIMEOUT_S = 30.0


@dataclass
class Outcome:
    """What became of one batch: when it left and came back, which transactions were admitted."""

    sent_us: int = 0
    done_us: int = 0
    late_ms: float = 0.0
    member: int = -1
    admitted: list[bool] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    retry: list[int] = field(default_factory=list)  # refused for room, or lost with the connection
    error: str | None = None


@dataclass
class SendStats:
    dispatched: int = 0
    admitted: int = 0
    stopped_early: bool = False
    cpu_s: float = 0.0  # the dispatcher's and the senders' own CPU time (thread_time)
    late_ms: list[float] = field(default_factory=list)

    @property
    def late_p99_ms(self) -> float:
        ordered = sorted(self.late_ms)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0


class OpenLoop:
    def __init__(self, urls: list[str], alive: Callable[[], list[int]], senders: int) -> None:
        self.urls = urls
        self.alive = alive
        self.senders = senders
        self._lock = threading.Lock()
        self._sender_cpu_s = 0.0

    def run(self, batches: list[Batch], stop: threading.Event) -> tuple[SendStats, dict[int, Outcome]]:
        """Send `batches` on their schedule (from now) until done or `stop` is set."""
        outcomes: dict[int, Outcome] = {}
        work: queue.Queue[tuple[Batch, float] | None] = queue.Queue()
        threads = [
            threading.Thread(target=self._sender, args=(work, outcomes), daemon=True)
            for _ in range(self.senders)
        ]
        for thread in threads:
            thread.start()
        stats = SendStats()
        self._sender_cpu_s = 0.0
        dispatcher_cpu = time.thread_time()
        start = time.monotonic() + 0.02
        try:
            for batch in batches:
                due = start + batch.offset_s
                while (delay := due - time.monotonic()) > 0:
                    if stop.wait(min(delay, 0.05)):
                        break
                if stop.is_set():
                    stats.stopped_early = True
                    break
                outcomes[batch.index] = Outcome()
                work.put((batch, due))
                stats.dispatched += 1
        finally:
            for _ in threads:
                work.put(None)
            for thread in threads:
                thread.join(timeout=SUBMIT_TIMEOUT_S * 2)
        stats.cpu_s = time.thread_time() - dispatcher_cpu + self._sender_cpu_s
        stats.late_ms = [o.late_ms for o in outcomes.values()]
        stats.admitted = sum(sum(o.admitted) for o in outcomes.values())
        return stats, outcomes

    def resend(self, batches: list[Batch], outcomes: dict[int, Outcome]) -> Counter[str]:
        """Submit again, in order, the transactions refused for room or lost with a connection (a batch at a
        time, to a live member); returns what was still refused."""
        refused: Counter[str] = Counter()
        clients: dict[int, KeepAliveRpc] = {}
        try:
            for batch in batches:
                outcome = outcomes.get(batch.index)
                if outcome is None or not outcome.retry:
                    continue
                indexes, outcome.retry = outcome.retry, []
                again = Batch(
                    batch.index,
                    0.0,
                    batch.member,
                    [batch.hashes[i] for i in indexes],
                    [batch.kinds[i] for i in indexes],
                    [batch.hexes[i] for i in indexes],
                    submit_body([batch.hexes[i] for i in indexes], 0),
                )
                retried = Outcome()
                self._submit(again, retried, clients, time.monotonic())
                for position, index in enumerate(indexes):
                    if retried.admitted[position]:
                        outcome.admitted[index] = True
                refused += retried.refused
                outcome.retry = [indexes[i] for i in retried.retry]
        finally:
            for client in clients.values():
                client.close()
        return refused

    def _sender(self, work: queue.Queue[tuple[Batch, float] | None], outcomes: dict[int, Outcome]) -> None:
        clients: dict[int, KeepAliveRpc] = {}
        started = time.thread_time()
        try:
            while (item := work.get()) is not None:
                batch, due = item
                self._submit(batch, outcomes[batch.index], clients, due)
        finally:
            for client in clients.values():
                client.close()
            with self._lock:
                self._sender_cpu_s += time.thread_time() - started

    def _submit(self, batch: Batch, outcome: Outcome, clients: dict[int, KeepAliveRpc], due: float) -> None:
        alive = self.alive()
        member = batch.member if batch.member in alive else alive[batch.index % len(alive)]
        client = clients.get(member)
        if client is None:
            client = clients[member] = KeepAliveRpc(self.urls[member], timeout=SUBMIT_TIMEOUT_S)
        outcome.member = member
        outcome.admitted = [False] * batch.count
        outcome.late_ms = max(0.0, (time.monotonic() - due) * 1000)
        outcome.sent_us = time.time_ns() // 1_000
        try:
            answer = client.post(batch.body)
            results = result_of(answer, "tx_submit", client.url)["results"]
        except RpcFailure as exc:
            outcome.done_us = time.time_ns() // 1_000
            outcome.error = str(exc)
            outcome.retry = list(range(batch.count))
            outcome.refused["no answer" if exc.code is None else str(exc.code)] += batch.count
            return
        outcome.done_us = time.time_ns() // 1_000
        for index, entry in enumerate(results):
            error: dict[str, Any] | None = entry.get("error")
            if error is None:
                outcome.admitted[index] = True
                continue
            reason = (error.get("data") or {}).get("reason_code") or str(error.get("code"))
            outcome.refused[reason] += 1
            if error.get("code") == MEMPOOL_FULL:
                outcome.retry.append(index)
