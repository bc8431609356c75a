"""A node listens on IPv6 and advertises /ip6 addresses; one listening on every interface advertises the
address it is given.

The two members run in a child process (tests/node/ipv6_members.py) inside a network namespace this test
creates with `unshare`, so nothing binds outside 127.0.0.1 in the test's own namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("ipv6_members.py")
IN_NEW_NAMESPACE = ["--net", "--map-root-user"]


def _unshare() -> str:
    """The `unshare` command, or a skip where a network namespace cannot be created."""
    command = shutil.which("unshare")
    if command is None:
        pytest.skip("no `unshare` command on this machine")
    probe = subprocess.run([command, *IN_NEW_NAMESPACE, "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.decode(errors='replace')}")
    return command


def test_members_on_ipv6_link_up_and_advertise_ip6_addresses() -> None:
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    result = subprocess.run(
        [_unshare(), *IN_NEW_NAMESPACE, sys.executable, str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.splitlines()[-1])
    members = zip(seen["link_addrs"], seen["link_ports"], seen["peer_ids"], strict=True)
    for link_addr, port, peer_id in members:
        assert link_addr == f"/ip6/::1/tcp/{port}/p2p/{peer_id}"
    assert seen["listen_addrs"] and all(a.startswith("/ip6/::1/tcp/") for a in seen["listen_addrs"])
    assert seen["received"] == [seen["first_key"], "vote over ipv6"]
