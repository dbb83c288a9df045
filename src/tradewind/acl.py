"""Redis ACL users from the topic table: least privilege on the bus.

Each service connects as its own user (``tradewind-<service>``) that may only
read the streams it consumes, append to the streams it produces, and touch its
own state, lease and transaction keys (``topics.CONSUMES`` / ``PRODUCES``). So
credentials stolen from ``ws`` cannot write an order, and only execution can
write a fill. Redis checks every command a script runs against the caller's
user, so the bus's commit script gains no rights either.

Rights are split in selectors (Redis ≥ 7.0), because Redis grants commands and
keys together: the root of a user may run scripts over all its keys, one
selector may append (``XADD``) to what it produces, another consume (read,
ack, claim) what it consumes, another read and write its own state. Stream
metadata (length, groups, lag) of the prefix is readable by all: readiness and
lockstep need it, and it holds no payload.

Only the standard library and ``topics`` here: ``make secrets`` runs it from a
checkout (``python -m tradewind.acl``) before anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from tradewind.topics import (
    ALL,
    CONSUMES,
    CONTROL_REPLIES,
    DEAD_LETTER,
    GROUPS,
    PARTITIONED,
    PRODUCES,
)

USERS = (*CONSUMES, "admin")
STATE: dict[str, tuple[str, ...]] = {
    "ws": ("state:ws:*", "lease:ws:*"),
    "signal": ("state:signal:*", "lease:signal:*", "members:signal"),
    "risk": ("state:risk:*", "lease:risk"),
    "execution": ("state:paper:*", "state:exec:*"),
    "db_writer": (),
    "operator": (),
}
STATE.update(
    {g: tuple(dict.fromkeys(k for m in members for k in STATE[m])) for g, members in GROUPS.items()}
)
"""Keys besides streams, under the prefix: state, leases, membership (a group
of services in one process: the union of its members')."""
COMMON = ("tx:*", "dead:*", "streams", "meta:partitions")
"""Every user: commit tokens, dead-letter guards, the stream registry, the partition count."""

_ROOT = (
    "+ping +echo +hello +auth +select +time +client|setname +client|id "
    "+multi +exec +discard +script|load +script|exists +evalsha +eval"
)
_META = "+xlen +xinfo|groups +smembers"
_CONSUME = (
    "+xreadgroup +xack +xautoclaim +xclaim +xpending +xgroup|create +xgroup|createconsumer "
    "+xrange +xinfo|groups +xinfo|stream +xlen"
)
_PRODUCE = "+xadd"
_STATE = (
    "+get +set +del +exists +pexpire +sadd +smembers +srem "
    "+zadd +zrem +zrange +zremrangebyscore +zcard"
)
_TRIM = "+exists +xtrim +xinfo|groups +xpending"


def user_name(service: str) -> str:
    return f"tradewind-{service}"


def _streams(prefix: str, topics: Iterable[str]) -> list[str]:
    return [f"{prefix}:{t}:*" if t in PARTITIONED else f"{prefix}:{t}" for t in topics]


def _keys(patterns: Iterable[str]) -> str:
    return " ".join(f"~{p}" for p in dict.fromkeys(patterns))


def rules(service: str, prefix: str) -> str:
    """The ACL rules of one service's user (without ``user``, name and password)."""
    if service == "admin":
        return "~* &* +@all"
    consumes = list(CONSUMES[service])
    produces = list(PRODUCES[service])
    if consumes:
        produces.append(DEAD_LETTER)  # a consumer dead-letters what it cannot process
    every = _streams(prefix, (*ALL, DEAD_LETTER, CONTROL_REPLIES))
    own = [f"{prefix}:{k}" for k in (*STATE[service], *COMMON)]
    mine = _streams(prefix, (*consumes, *produces))
    parts = ["resetkeys resetchannels -@all", _ROOT, _keys([*mine, *own])]
    parts.append(f"({_META} {_keys([*every, f'{prefix}:streams'])})")
    if consumes:
        extra = " +xgroup|destroy" if service == "operator" else ""
        parts.append(f"({_CONSUME}{extra} {_keys(_streams(prefix, consumes))})")
    if produces:
        parts.append(f"({_PRODUCE} {_keys(_streams(prefix, produces))})")
    parts.append(f"({_STATE} {_keys(own)})")
    if service == "db_writer":
        parts.append(f"({_TRIM} {_keys(every)})")
    return " ".join(parts)


def acl_file(prefix: str, passwords: Mapping[str, str]) -> str:
    """An ACL file (``redis-server --aclfile``): one user per service, the
    operator and an admin, passwords stored as SHA-256 only; the default user
    is disabled, and ``healthcheck`` may only PING (container probes)."""
    lines = ["user default off resetkeys resetchannels -@all"]
    lines.append("user healthcheck on nopass resetkeys resetchannels -@all +ping")
    for service in USERS:
        digest = hashlib.sha256(passwords[service].encode()).hexdigest()
        lines.append(f"user {user_name(service)} on #{digest} {rules(service, prefix)}")
    return "\n".join(lines) + "\n"


def read_passwords(directory: Path) -> dict[str, str]:
    """``redis_<user>_password`` files of a secrets directory (``make secrets``)."""
    out: dict[str, str] = {}
    for service in USERS:
        path = directory / f"redis_{service}_password"
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise ValueError(f"cannot read {path}: {exc.strerror}") from None
        if len(value) < 32:
            raise ValueError(f"{path} holds fewer than 32 characters; use 32 random bytes")
        out[service] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tradewind.acl", description=__doc__)
    parser.add_argument("--prefix", default="tw", help="the bus key prefix (TRADEWIND_BUS__PREFIX)")
    parser.add_argument("--secrets-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(acl_file(args.prefix, read_passwords(args.secrets_dir)))
    except ValueError as exc:
        print(f"tradewind: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
