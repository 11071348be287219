"""Network namespaces for the fleet: one bridge on the host side, one namespace and veth link per node.

Addresses come from 198.18.0.0/15 only (RFC 2544 benchmarking range), never a private range. Every name
carries this process's id, so leftovers of a run that died (its pid gone) can be found and removed,
while a fleet that another process runs at the same time is left alone.
"""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
from collections.abc import Sequence
from typing import NamedTuple

from testbed.processes import exists

BENCH_RANGE = ipaddress.ip_network("198.18.0.0/15")
BLOCK_PREFIX = 22  # one fleet's subnet: the bridge plus up to 1021 nodes
NETNS_PREFIX = "emfleet-"
LINK_PREFIX = "emf"  # interface names are limited to 15 characters: emf<pid>-<index>
_NETNS = re.compile(rf"^{NETNS_PREFIX}(\d+)-\d+$")
_LINK = re.compile(rf"^{LINK_PREFIX}(\d+)(?:-\d+)?$")


def ip(*args: str, check: bool = True) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


class NodeLink(NamedTuple):
    netns: str
    host_link: str  # the host side of the veth pair: set it down to cut the node off
    address: str  # the node's address (its eth0 inside the namespace)


def remove_leftovers() -> list[str]:
    """Delete namespaces and links of fleets whose process is gone; returns what was removed."""
    removed = []
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        match = _NETNS.match(name)
        if match and not exists(int(match.group(1))):
            ip("netns", "delete", name, check=False)
            removed.append(name)
    for line in ip("-o", "link", "show").splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        match = _LINK.match(name)
        if match and not exists(int(match.group(1))):
            ip("link", "delete", name, check=False)
            removed.append(name)
    return removed


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 route and address the host has: a fleet's block must overlap none of them."""
    used = []
    for line in ip("-4", "-o", "addr", "show").splitlines():
        used.append(ipaddress.ip_interface(line.split()[3]).network)
    for line in ip("-4", "route", "show", "table", "all").splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast", "unreachable", "blackhole", "prohibit", "throw"):
            word = line.split()[1]
        if word == "default":
            continue
        try:
            used.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            continue
    return [net for net in used if isinstance(net, ipaddress.IPv4Network)]


def free_block() -> ipaddress.IPv4Network:
    used = _used_networks()
    for block in BENCH_RANGE.subnets(new_prefix=BLOCK_PREFIX):
        if not any(block.overlaps(net) for net in used):
            return block
    raise RuntimeError(f"no free /{BLOCK_PREFIX} left in {BENCH_RANGE}")


class FleetNetwork:
    """The bridge (the centre listens on its address) and a namespace per node; `close` removes all."""

    def __init__(self) -> None:
        self.tag = str(os.getpid())
        self.bridge = f"{LINK_PREFIX}{self.tag}"
        self.block = free_block()
        hosts = self.block.hosts()
        self.host_address = str(next(hosts))
        self._hosts = hosts
        self.links: list[NodeLink] = []
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.host_address}/{BLOCK_PREFIX}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def add_node(self) -> NodeLink:
        index = len(self.links)
        netns = f"{NETNS_PREFIX}{self.tag}-{index}"
        host_link = f"{LINK_PREFIX}{self.tag}-{index}"
        address = str(next(self._hosts))
        ip("netns", "add", netns)
        link = NodeLink(netns, host_link, address)
        self.links.append(link)  # before configuring it, so close() removes a half-built node too
        ip("link", "add", host_link, "type", "veth", "peer", "name", "eth0", "netns", netns)
        ip("link", "set", host_link, "master", self.bridge)
        ip("link", "set", host_link, "up")
        ip("-n", netns, "addr", "add", f"{address}/{BLOCK_PREFIX}", "dev", "eth0")
        ip("-n", netns, "link", "set", "eth0", "up")
        ip("-n", netns, "link", "set", "lo", "up")  # node_exporter listens on the node's loopback
        return link

    def set_link(self, links: Sequence[NodeLink], *, up: bool) -> None:
        for link in links:
            ip("link", "set", link.host_link, "up" if up else "down")

    def close(self) -> None:
        """Delete every namespace (its veth pair goes with it) and the bridge; never raises."""
        for link in self.links:
            ip("netns", "delete", link.netns, check=False)
            ip("link", "delete", link.host_link, check=False)
        ip("link", "delete", self.bridge, check=False)
        self.links.clear()


def in_netns(netns: str, argv: Sequence[str]) -> list[str]:
    """argv run inside the namespace: `ip netns exec` execs it, so the pid is the program's own."""
    return ["ip", "netns", "exec", netns, *argv]
