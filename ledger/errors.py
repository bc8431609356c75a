"""The ledger's error classes.

Two families, in the spirit of h11: `DecodeError` and `InvalidSignature` describe bad input that came from
outside (a peer, a client, a file); `LedgerError` is the root every ledger error derives from, so a caller
can catch exactly what the ledger raises and nothing else.
"""


class LedgerError(Exception):
    """Root of every error the ledger raises on purpose."""


class DecodeError(LedgerError):
    """Bytes that are not the canonical encoding of a value of the expected shape."""


class InvalidKey(LedgerError):
    """A malformed public or private key, or an address whose text form does not check."""


class InvalidSignature(LedgerError):
    """A signature that does not verify for the claimed signer, tag and chain id."""


class InvalidCertificate(LedgerError):
    """A commit certificate that does not prove 2f+1 distinct members signed the block."""


class GenesisError(LedgerError):
    """A genesis document that is malformed or breaks a rule."""
