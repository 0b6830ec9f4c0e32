"""The operator's egress policy: which addresses an endpoint named by a spec may reach.

Why this module exists: a PayScopeDeployment names endpoints (the API URL, the Pinecone
controller, the S3 endpoint, the Neo4j URI, the Postgres and Redis hosts inside its
Secrets) and the operator connects to them from its own network position. Without a
policy, whoever may create the resource in any namespace could make the operator call
the cloud metadata service, the Kubernetes API server, or anything else its Pod reaches.
Every client checks its endpoint here before its first connection (``check``), resolving
the host once and judging every address it resolves to; callers connect to the addresses
returned where their client lets them.

The rules, in order; every resolved address must pass all of them:

1. A cloud metadata host name (``metadata.google.internal``...) is denied, unresolved.
2. The Kubernetes API server's own address and port, as the operator reaches it, are denied.
3. Link-local addresses (169.254.0.0/16, fe80::/10) and the other metadata addresses
   (fd00:ec2::254, 100.100.100.200) are denied. No allowlist entry overrides rules 1 to 3.
4. Loopback (127.0.0.0/8, ::1, and the unspecified 0.0.0.0/8 and ::) is denied unless an
   allowlist network that lies inside loopback covers the address: ``127.0.0.1/32``
   allows 127.0.0.1 and never 127.0.0.2, and ``0.0.0.0/0`` opens no loopback address.
5. With an allowlist (``PAYSCOPE_ALLOWED_EGRESS``: comma-separated CIDRs or addresses, host
   names, ``*.domain`` patterns) the host must match a name or pattern, or the address lie
   in a listed network. Without one, every address rules 1 to 4 leave is allowed.

What it must not do: connect anywhere, read Secrets, or know which client asks; it is
pure apart from the resolver (``Resolver``), which tests replace.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from payscope_operator import errors

ENV_ALLOWED = "PAYSCOPE_ALLOWED_EGRESS"
ENV_MAX_RESPONSE_BYTES = "PAYSCOPE_MAX_RESPONSE_BYTES"
DEFAULT_MAX_RESPONSE_BYTES = 1 << 20
"""HTTP bodies larger than this (1 MiB) are not read: the answer is Unknown (ResponseTooLarge)."""

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port) -> addresses``; raises OSError when the name does not resolve."""

METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
        "metadata.tencentyun.com",
    }
)
"""Host names of cloud instance metadata services, denied before they are resolved."""
LINK_LOCAL: tuple[Network, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS IMDS over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
)
LOOPBACK: tuple[Network, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
    ipaddress.ip_network("0.0.0.0/8"),  # "this host": connecting to it reaches loopback
    ipaddress.ip_network("::/128"),
)


def parse_address(text: str) -> Address:
    """An address as connections see it: zone id dropped, IPv4-mapped IPv6 as IPv4."""
    found = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def _literal(host: str) -> Address | None:
    try:
        return parse_address(host.strip("[]"))
    except ValueError:
        return None


def normal_name(host: str) -> str:
    return host.strip().rstrip(".").lower()


def _within(address: Address, networks: Iterable[Network]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def _inside_loopback(net: Network) -> bool:
    """The whole network lies inside a loopback range (so listing it is an explicit loopback opt-in)."""
    return any(
        net.version == lo.version and net.network_address in lo and net.broadcast_address in lo for lo in LOOPBACK
    )


@dataclass(frozen=True)
class Allowlist:
    """What ``PAYSCOPE_ALLOWED_EGRESS`` lists: networks, exact host names and ``*.domain`` suffixes."""

    networks: tuple[Network, ...] = ()
    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Allowlist:
        """Parse the comma-separated list; raises ValueError naming the first entry it cannot read."""
        networks: list[Network] = []
        names: set[str] = set()
        suffixes: list[str] = []
        for raw in text.split(","):
            entry = raw.strip()
            if not entry:
                continue
            if entry.startswith("*."):
                suffix = normal_name(entry[1:])
                if len(suffix) < 2 or "*" in suffix:
                    raise ValueError(f"{ENV_ALLOWED}: {entry!r} is not a *.domain pattern")
                suffixes.append(suffix)
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            if "*" in entry or "/" in entry or ":" in entry or " " in entry:
                raise ValueError(f"{ENV_ALLOWED}: {entry!r} is neither a CIDR, a host name nor a *.domain pattern")
            names.add(normal_name(entry))
        return cls(tuple(networks), frozenset(names), tuple(suffixes))

    def allows_name(self, host: str) -> bool:
        name = normal_name(host)
        return name in self.names or any(name.endswith(suffix) for suffix in self.suffixes)

    def allows_address(self, address: Address) -> bool:
        return _within(address, self.networks)

    def opens_loopback(self, address: Address) -> bool:
        """An entry that lies inside loopback covers ``address``: the explicit opt-in rule 4 asks for."""
        return _within(address, [net for net in self.networks if _inside_loopback(net)])

    def describe(self) -> str:
        parts = [str(n) for n in self.networks] + sorted(self.names) + [f"*{s}" for s in self.suffixes]
        return ", ".join(parts) or "nothing"


@dataclass(frozen=True)
class Endpoint:
    """One place a spec points the operator at: the field naming it, and its host and port."""

    field: str
    host: str
    port: int

    def describe(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Policy:
    """The operator's egress policy (one per process) and the size cap of HTTP bodies."""

    allowlist: Allowlist | None = None
    api_server: frozenset[tuple[Address, int]] = frozenset()
    """The Kubernetes API server's addresses and port, as the operator's own client reaches it."""
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    @classmethod
    def from_settings(
        cls,
        allowed: str | None,
        *,
        api_server: Iterable[tuple[str, int]] = (),
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> Policy:
        """The policy of ``--allowed-egress`` (empty or None: no allowlist); raises ValueError."""
        if max_response_bytes < 1:
            raise ValueError("the response size cap must be at least 1 byte")
        allowlist = Allowlist.parse(allowed) if allowed and allowed.strip() else None
        servers = frozenset((parse_address(host), port) for host, port in api_server)
        return cls(allowlist, servers, max_response_bytes)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Policy:
        """The policy ``payscope-operator`` reads from its environment when no flag says otherwise."""
        env = os.environ if environ is None else environ
        cap = env.get(ENV_MAX_RESPONSE_BYTES, "").strip()
        return cls.from_settings(
            env.get(ENV_ALLOWED), max_response_bytes=int(cap) if cap else DEFAULT_MAX_RESPONSE_BYTES
        )

    def describe(self) -> str:
        allowed = "no allowlist" if self.allowlist is None else f"allowlist {self.allowlist.describe()}"
        return f"{allowed}; link-local, metadata, loopback and the API server denied"


@dataclass(frozen=True)
class Verdict:
    """What :func:`judge` decided for one endpoint: the addresses allowed, or why not."""

    endpoint: Endpoint
    addresses: tuple[str, ...] = ()
    denied: str | None = None
    offending: str | None = None  # the address (or name) that was denied

    def raise_if_denied(self) -> tuple[str, ...]:
        if self.denied is None:
            return self.addresses
        what = self.endpoint.describe()
        via = f" resolves to {self.offending}, which" if self.offending and self.offending != self.endpoint.host else ""
        raise errors.EgressDenied(
            f"{self.endpoint.field}: {what}{via} is denied by the operator's egress policy ({self.denied});"
            " no connection was made"
        )


def _address_denial(policy: Policy, endpoint: Endpoint, address: Address, name_allowed: bool) -> str | None:
    if (address, endpoint.port) in policy.api_server:
        return "the Kubernetes API server"
    if _within(address, LINK_LOCAL):
        return "link-local or cloud metadata address"
    allowlist = policy.allowlist
    if _within(address, LOOPBACK):
        if allowlist is not None and allowlist.opens_loopback(address):
            return None
        return f"loopback, not opened by {ENV_ALLOWED}"
    if allowlist is not None and not name_allowed and not allowlist.allows_address(address):
        return f"not in {ENV_ALLOWED}"
    return None


def judge(policy: Policy, endpoint: Endpoint, addresses: Sequence[str]) -> Verdict:
    """Judge an endpoint on the addresses its host resolved to (pure); every address must pass."""
    name = normal_name(endpoint.host)
    if name in METADATA_NAMES or any(name.endswith("." + known) for known in METADATA_NAMES if "." in known):
        return Verdict(endpoint, denied="cloud metadata host name", offending=endpoint.host)
    if not addresses:
        return Verdict(endpoint, denied="it resolves to no address", offending=endpoint.host)
    allowlist = policy.allowlist
    name_allowed = allowlist is not None and _literal(endpoint.host) is None and allowlist.allows_name(name)
    for text in addresses:
        address = parse_address(text)
        why = _address_denial(policy, endpoint, address, name_allowed)
        if why is not None:
            return Verdict(endpoint, denied=why, offending=str(address))
    return Verdict(endpoint, tuple(dict.fromkeys(str(parse_address(a)) for a in addresses)))


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """The addresses the system resolver gives for ``host`` (TCP), in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def resolve_now(host: str, port: int) -> Sequence[str]:
    """:func:`system_resolver` for code running in a worker thread (boto3's event hooks)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _early(policy: Policy, endpoint: Endpoint) -> Verdict | None:
    """A verdict that needs no resolution: a metadata name, or an address literal."""
    literal = _literal(endpoint.host)
    if literal is not None:
        return judge(policy, endpoint, [str(literal)])
    name = normal_name(endpoint.host)
    if name in METADATA_NAMES:
        return judge(policy, endpoint, [])
    return None


def _unresolvable(endpoint: Endpoint, exc: OSError) -> errors.DependencyUnavailable:
    return errors.DependencyUnavailable(
        f"{endpoint.field}: host {endpoint.host} does not resolve ({type(exc).__name__}); no connection was made"
    )


async def check(policy: Policy, endpoint: Endpoint, resolver: Resolver = system_resolver) -> tuple[str, ...]:
    """Resolve the endpoint's host once and judge every address; return them, for the caller to connect to.

    Raises ``errors.EgressDenied`` (naming the field) when any address is denied, and
    ``errors.DependencyUnavailable`` when the name does not resolve.
    """
    early = _early(policy, endpoint)
    if early is not None:
        return early.raise_if_denied()
    try:
        addresses = await resolver(endpoint.host, endpoint.port)
    except OSError as exc:
        raise _unresolvable(endpoint, exc) from None
    return judge(policy, endpoint, addresses).raise_if_denied()


def check_now(
    policy: Policy, endpoint: Endpoint, resolve: Callable[[str, int], Sequence[str]] = resolve_now
) -> tuple[str, ...]:
    """:func:`check` for code running in a worker thread."""
    early = _early(policy, endpoint)
    if early is not None:
        return early.raise_if_denied()
    try:
        addresses = resolve(endpoint.host, endpoint.port)
    except OSError as exc:
        raise _unresolvable(endpoint, exc) from None
    return judge(policy, endpoint, addresses).raise_if_denied()
