"""Bad input to the operator commands (node, devnet, chain): one line on stderr, a non-zero exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ledger.keys import PrivateKey
from node import devnet

INVENTORY = """
hosts:
  - {name: cmp-0, region: eu-west, vcpus: 8, ram_mb: 32768, disk_gb: 200}
  - {name: cmp-1, region: eu-west, vcpus: 8, ram_mb: 32768, disk_gb: 200}
vms:
  - {id: vm-0, host: cmp-0, flavor: {vcpus: 2, ram_mb: 4096, disk_gb: 40}}
regions: [eu-west]
"""


PUBLISH = ["capacity", "publish", "--inventory", "{inventory}"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "node.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=60, check=False)


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["node", "run", "--home", "{missing}"], 2),
        (["node", "run", "--home", "{empty}"], 2),
        (["devnet", "init", "--nodes", "3", "--dir", "{new}"], 2),
        (["devnet", "init", "--nodes", "many", "--dir", "{new}"], 2),
        (["devnet", "up", "--dir", "{missing}"], 1),
        (["devnet", "status", "--dir", "{missing}"], 1),
        (["devnet", "demo", "--dir", "{missing}"], 1),
        (["chain", "verify", "--rpc", "http://127.0.0.1:1"], 2),
        (["chain", "verify", "--genesis", "{missing}", "--rpc", "http://127.0.0.1:1"], 2),
        (["chain", "verify", "--genesis", "{garbage}", "--rpc", "http://127.0.0.1:1"], 2),
        (["chain", "verify", "--home", "{empty}"], 2),
        (["capacity", "plan", "--inventory", "{missing}"], 2),
        (["capacity", "plan", "--inventory", "{garbage}"], 2),
        (["capacity", "plan", "--inventory", "{inventory}", "--reserve", "lots"], 2),
        (["capacity", "plan", "--inventory", "{inventory}", "--strategy", "magic"], 2),
        (["capacity", "plan", "--inventory", "{inventory}", "--max-migrations", "-1"], 2),
        ([*PUBLISH, "--key", "{garbage}", "--prices", "{garbage}", "--duration", "1d"], 2),
        ([*PUBLISH, "--key", "{key}", "--prices", "{garbage}", "--duration", "1d"], 2),
        ([*PUBLISH, "--key", "{key}", "--prices", "{garbage}", "--duration", "0s"], 2),
    ],
)
def test_operator_commands_reject_bad_input_in_one_line(tmp_path: Path, args: list[str], code: int) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "genesis.json").write_text("{}")
    (tmp_path / "garbage.json").write_text("not json")
    (tmp_path / "dc.yaml").write_text(INVENTORY)
    (tmp_path / "signer.key").write_text(PrivateKey(b"\x05" * 32).to_key_file())
    values = {
        "inventory": str(tmp_path / "dc.yaml"),
        "key": str(tmp_path / "signer.key"),
        "missing": str(tmp_path / "missing"),
        "empty": str(tmp_path / "empty"),
        "new": str(tmp_path / "new"),
        "garbage": str(tmp_path / "garbage.json"),
    }
    result = run(*[a.format(**values) for a in args], cwd=tmp_path)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_devnet_init_refuses_to_overwrite(tmp_path: Path) -> None:
    devnet.init(tmp_path / "dn", 4)
    result = run("devnet", "init", "--dir", str(tmp_path / "dn"), cwd=tmp_path)
    assert result.returncode == 1
    assert "exists" in result.stderr
