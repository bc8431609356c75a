"""Every size and amount limit of the protocol, defined once.

Peers, clients and files are untrusted: each decoder and each batch checks its input against these bounds
before doing work proportional to it.
"""

# Credits. Total supply stays below 2**53 so every JSON client (IEEE doubles) reads amounts exactly.
MAX_SUPPLY = 2**53 - 1

# Canonical encoding.
MAX_INT = 2**64 - 1
MIN_INT = -(2**63)
MAX_NESTING = 16

# Transactions and blocks.
MAX_TX_BYTES = 8 * 1024
MAX_BLOCK_TXS = 4_000
MAX_BLOCK_BYTES = 4 * 1024 * 1024
MAX_TEXT_CHARS = 256
MAX_SEALED_GRANT_BYTES = 4 * 1024

# Genesis.
MAX_GENESIS_BYTES = 1024 * 1024
MAX_VALIDATORS = 64
MAX_CLASSES = 64
MAX_REGIONS = 64

# Consensus messages (a pre-prepare carries a whole block).
MAX_CONSENSUS_MESSAGE_BYTES = MAX_BLOCK_BYTES + 64 * 1024
# A member's last-signed record (what it signed, its prepared certificate and that block).
MAX_SIGNER_RECORD_BYTES = 2 * MAX_CONSENSUS_MESSAGE_BYTES
