"""A node's configuration: `config.json` in the node's home directory.

Network addresses live here (bootstrap peers, listen addresses), not in genesis, so a datacenter can move
without a new chain. Every field is checked on load; an error names the field and the file.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.json"
DEFAULT_RPC_PORT = 26657
DEFAULT_P2P_PORT = 26656
DEFAULT_LINK_PORT = 26658


def host_port(host: str, port: int) -> str:
    """`host:port`, an IPv6 address in brackets (`[::1]:26657`), as URLs and bind strings write it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def advertised_host(listen_host: str, advertise_host: str = "") -> str:
    """The address other nodes dial for a node listening on `listen_host`: `advertise_host`, or the listen
    address itself. Both must be IP addresses; one listening on every interface (`0.0.0.0`, `::`) must name
    the address it advertises. Raises ValueError saying which rule is broken."""
    _ip_address("p2p_host", listen_host)
    public = advertise_host or listen_host
    if _ip_address("p2p_advertise_host", public).is_unspecified:
        raise ValueError(f"{public} means every interface, not an address to dial: set p2p_advertise_host")
    return public


def _ip_address(name: str, host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{name} must be an IPv4 or IPv6 address, not {host!r}") from None


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class MempoolConfig:
    max_txs: int = 50_000
    max_per_account: int = 1_000
    censorship_bound_ms: int = 10_000


@dataclass(frozen=True)
class NodeConfig:
    name: str
    home: Path
    p2p_host: str = "127.0.0.1"
    p2p_port: int = DEFAULT_P2P_PORT
    p2p_advertise_host: str = ""  # empty: p2p_host (see `advertised_host`)
    rpc_host: str = "127.0.0.1"
    rpc_port: int = DEFAULT_RPC_PORT
    bootstrap: tuple[str, ...] = ()
    link_port: int = DEFAULT_LINK_PORT
    member_links: tuple[str, ...] = ()
    observer: bool = False
    operator_methods: bool = False
    log_level: str = "INFO"
    mempool: MempoolConfig = field(default_factory=MempoolConfig)

    @property
    def key_file(self) -> Path:
        return self.home / "key.json"

    @property
    def genesis_file(self) -> Path:
        return self.home / "genesis.json"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def rpc_url(self) -> str:
        return f"http://{host_port(self.rpc_host, self.rpc_port)}"

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("home")
        data["bootstrap"] = list(self.bootstrap)
        data["member_links"] = list(self.member_links)
        return json.dumps(data, indent=2) + "\n"

    def write(self) -> None:
        (self.home / CONFIG_FILE).write_text(self.to_json())


def _field(data: dict[str, Any], name: str, kind: type, default: Any, where: str) -> Any:
    value = data.get(name, default)
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: {name} must be an integer")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: {name} must be of type {kind.__name__}")
    return value


def load_config(home: Path) -> NodeConfig:
    """Read and check `home/config.json`."""
    path = home / CONFIG_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file (is {home} a node home? see `fedmarket devnet init`)"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    where = str(path)
    known = {f for f in NodeConfig.__dataclass_fields__ if f != "home"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown fields {', '.join(unknown)}")
    defaults = NodeConfig(name="x", home=home)
    mempool_data = data.get("mempool", {})
    if not isinstance(mempool_data, dict):
        raise ConfigError(f"{where}: mempool must be an object")
    mempool_defaults = MempoolConfig()
    mempool = MempoolConfig(
        **{
            name: _field(mempool_data, name, int, getattr(mempool_defaults, name), f"{where}: mempool")
            for name in MempoolConfig.__dataclass_fields__
        }
    )
    bootstrap = _field(data, "bootstrap", list, [], where)
    if not all(isinstance(b, str) and "/p2p/" in b for b in bootstrap):
        raise ConfigError(f"{where}: bootstrap must list multiaddrs ending in /p2p/<peer id>")
    member_links = _field(data, "member_links", list, [], where)
    if not all(isinstance(b, str) and "/p2p/" in b for b in member_links):
        raise ConfigError(f"{where}: member_links must list multiaddrs ending in /p2p/<peer id>")
    config = NodeConfig(
        name=_field(data, "name", str, None, where) if "name" in data else "",
        home=home,
        p2p_host=_field(data, "p2p_host", str, defaults.p2p_host, where),
        p2p_port=_field(data, "p2p_port", int, defaults.p2p_port, where),
        p2p_advertise_host=_field(data, "p2p_advertise_host", str, "", where),
        rpc_host=_field(data, "rpc_host", str, defaults.rpc_host, where),
        rpc_port=_field(data, "rpc_port", int, defaults.rpc_port, where),
        bootstrap=tuple(bootstrap),
        link_port=_field(data, "link_port", int, defaults.link_port, where),
        member_links=tuple(member_links),
        observer=_field(data, "observer", bool, False, where),
        operator_methods=_field(data, "operator_methods", bool, False, where),
        log_level=_field(data, "log_level", str, "INFO", where),
        mempool=mempool,
    )
    if not config.name:
        raise ConfigError(f"{where}: name is required")
    try:
        advertised_host(config.p2p_host, config.p2p_advertise_host)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    for port_name in ("p2p_port", "rpc_port", "link_port"):
        port = getattr(config, port_name)
        if not 0 <= port <= 65535:
            raise ConfigError(f"{where}: {port_name} must be a TCP port")
    return config
