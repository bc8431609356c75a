"""Every bound of the JSON-RPC server, defined once.

Clients are untrusted: the server checks each request against these bounds before doing work proportional to
it. The body cap is enforced while the body is read, so an oversized body never sits in memory whole.
"""

from ledger.limits import MAX_SUPPLY, MAX_TX_BYTES

# HTTP body and JSON-RPC batch.
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_BATCH_REQUESTS = 100

# tx_submit: transactions per call (a full list of maximal transactions, in hex, fits the body cap).
MAX_SUBMIT_TXS = 100
assert 2 * MAX_TX_BYTES * MAX_SUBMIT_TXS < MAX_BODY_BYTES

# Integers a JSON client (IEEE doubles) reads exactly; every integer param and result stays within it.
MAX_JSON_INT = MAX_SUPPLY

# Text params (class, region) and list results.
MAX_PARAM_TEXT_CHARS = 256
MAX_LIST_RESULTS = 1_000
DEFAULT_TRADES_LIMIT = 100
MAX_QUOTE_QUANTITY = 2**32
MAX_QUOTE_DURATION_S = 10 * 366 * 24 * 3600

# Server lifecycle: how long in-flight requests may run on after shutdown starts (seconds).
SHUTDOWN_GRACE_S = 2.0
