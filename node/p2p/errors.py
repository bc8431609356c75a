"""Errors of the network layer.

`NetworkError` is the root: the runtime catches it to tell a network failure (a peer that is gone, slow or
hostile, or a message we refuse to send) from a bug.
"""


class NetworkError(Exception):
    """Root of every error the network layer raises on purpose."""


class ConfigError(NetworkError):
    """A network configuration that cannot work (bad seed, bad multiaddr, a peer id that is not ours)."""


class FrameError(NetworkError):
    """A peer sent bytes that are not a well-formed frame within the limits.

    `reason` is one of "oversized", "truncated" or "silent" (no bytes within the read timeout).
    """

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


class GossipBatchTooLarge(NetworkError):
    """A transaction batch that would not fit in one gossip message under the size cap; nothing was sent."""


class RequestFailed(NetworkError):
    """A request/response exchange that did not produce an answer (peer gone, reset, refused, oversized)."""


class RequestTimeout(RequestFailed):
    """The peer did not answer a request within the caller's timeout."""
