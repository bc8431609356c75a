"""`config.json`: what a node reads from its home, checked field by field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.config import DEFAULT_LINK_PORT, ConfigError, NodeConfig, advertised_host, load_config

LINK = "/ip4/10.0.0.2/tcp/7002/p2p/12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5"


def test_member_links_and_link_port_round_trip(tmp_path: Path) -> None:
    NodeConfig(name="dc-a", home=tmp_path, link_port=7002, member_links=(LINK,)).write()
    config = load_config(tmp_path)
    assert config.link_port == 7002 and config.member_links == (LINK,)
    NodeConfig(name="dc-a", home=tmp_path).write()
    assert load_config(tmp_path).link_port == DEFAULT_LINK_PORT


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("member_links", "not a list", "member_links must be of type list"),
        ("member_links", ["/ip4/10.0.0.2/tcp/7002"], "member_links must list multiaddrs"),
        ("member_links", [7002], "member_links must list multiaddrs"),
        ("link_port", 70_000, "link_port must be a TCP port"),
        ("link_port", "7002", "link_port must be an integer"),
        ("p2p_host", "node-a.example", "p2p_host must be an IPv4 or IPv6 address"),
        ("p2p_host", "0.0.0.0", "every interface, not an address to dial"),
        ("p2p_host", "::", "every interface, not an address to dial"),
        ("p2p_advertise_host", "node-a.example", "p2p_advertise_host must be an IPv4 or IPv6 address"),
        ("p2p_advertise_host", "0.0.0.0", "every interface, not an address to dial"),
    ],
)
def test_bad_link_fields_name_the_field(tmp_path: Path, field: str, value: object, message: str) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"name": "dc-a", field: value}))
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path)


def test_ipv6_hosts_are_accepted_and_the_rpc_url_brackets_them(tmp_path: Path) -> None:
    NodeConfig(name="dc-a", home=tmp_path, p2p_host="::1", rpc_host="::1", rpc_port=7003).write()
    config = load_config(tmp_path)
    assert config.p2p_host == "::1" and config.rpc_url == "http://[::1]:7003"


def test_a_node_listening_on_every_interface_advertises_the_address_it_names(tmp_path: Path) -> None:
    NodeConfig(name="dc-a", home=tmp_path, p2p_host="0.0.0.0", p2p_advertise_host="10.0.0.5").write()
    config = load_config(tmp_path)
    assert (config.p2p_host, config.p2p_advertise_host) == ("0.0.0.0", "10.0.0.5")
    assert advertised_host(config.p2p_host, config.p2p_advertise_host) == "10.0.0.5"
    assert advertised_host("::1") == "::1"
