"""Network namespaces standing in for hosts, a bridge joining them, and link cuts.

Every name carries the run's tag, so concurrent or leftover runs never touch
each other, and :meth:`Topology.destroy` removes exactly what was made.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command, raising with its stderr when it fails and ``check`` is set."""
    done = subprocess.run(args, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip()}")
    return done


@dataclass
class Topology:
    """A bridge ``qkb<tag>`` at 10.77.<net>.1 and hosts ``qk<tag>h<N>`` at 10.77.<net>.1N."""

    tag: str
    net: int
    hosts: int
    made_bridge: bool = False
    made: list[str] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"qkb{self.tag}"

    @property
    def gateway(self) -> str:
        """The root namespace's address on the bridge (database, proxies, PgBouncer)."""
        return f"10.77.{self.net}.1"

    def namespace(self, host: int) -> str:
        return f"qk{self.tag}h{host}"

    def veth(self, host: int) -> str:
        """The root-side end of the host's link (taking it down cuts the host off)."""
        return f"qv{self.tag}h{host}"

    def address(self, host: int) -> str:
        return f"10.77.{self.net}.{10 + host}"

    def create(self) -> None:
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        self.made_bridge = True
        sh("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for host in range(1, self.hosts + 1):
            ns, veth = self.namespace(host), self.veth(host)
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", veth, "master", self.bridge, "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "route", "add", "default", "via", self.gateway)

    def cut(self, host: int) -> None:
        """Silently cut the host's link: packets vanish, sockets stay open."""
        sh("ip", "link", "set", self.veth(host), "down")

    def heal(self, host: int) -> None:
        sh("ip", "link", "set", self.veth(host), "up")

    def pids(self, host: int) -> list[int]:
        done = sh("ip", "netns", "pids", self.namespace(host), check=False)
        return [int(p) for p in done.stdout.split()]

    def destroy(self) -> None:
        """Remove every namespace and link this run made; never raises."""
        for ns in self.made:
            for pid in self.pids(int(ns.rsplit("h", 1)[1])):
                sh("kill", "-9", str(pid), check=False)
            sh("ip", "netns", "del", ns, check=False)
        self.made.clear()
        for host in range(1, self.hosts + 1):
            sh("ip", "link", "del", self.veth(host), check=False)
        if self.made_bridge:
            sh("ip", "link", "del", self.bridge, check=False)
            self.made_bridge = False
