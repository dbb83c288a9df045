"""A Redis bus transaction, built in Python and applied by one server script.

Why a script and not MULTI/EXEC: a fenced MULTI/EXEC needs WATCH and a read
of the lease keys before it (three round trips), and a retry after a lost
reply needs another to ask for the token. The ``COMMIT`` script does the
token check, the fence check and every write atomically in one EVALSHA, so a
commit costs one round trip whatever it holds, and it is still applied at
most once (token) and never over a successor's lease (fence).

The builder only records operations; nothing is sent until ``RedisBus.transact``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class Tx:
    """Operations of one commit, encoded as the ``COMMIT`` script's KEYS and ARGV."""

    __slots__ = ("_index", "_reads", "keys", "ops", "written")

    def __init__(self) -> None:
        self.keys: list[str] = [""]  # KEYS[1] is the token, set by ``transact``
        self._index: dict[str, int] = {}
        self.ops: list[bytes | str | int] = []
        self.written: set[str] = set()
        """Stream keys this transaction appends to (for the stream registry)."""
        self._reads: list[list[bytes | str | int]] = []

    def key(self, key: str) -> int:
        """The script's 1-based KEYS index of ``key``."""
        i = self._index.get(key)
        if i is None:
            self.keys.append(key)
            i = self._index[key] = len(self.keys)
        return i

    def xadd(self, key: str, payload: bytes, maxlen: int = 0) -> None:
        self.ops += ("A", self.key(key), maxlen, payload)
        self.written.add(key)

    def xadd_once(self, guard: str, px: int, key: str, payload: bytes) -> None:
        """XADD unless ``guard`` exists; creates ``guard`` (expiring after ``px`` ms),
        so the same entry from several consumer groups is added once."""
        self.ops += ("O", self.key(guard), px, self.key(key), payload)
        self.written.add(key)

    def set(self, key: str, value: bytes, px: int | None = None) -> None:
        if px is not None and px <= 0:
            raise ValueError(f"a state TTL must be positive, got {px} ms")
        self.ops += ("S", self.key(key), px or 0, value)

    def xack(self, key: str, group: str, ids: Iterable[str]) -> None:
        ids = list(ids)
        if ids:
            self.ops += ("K", self.key(key), group, len(ids), *ids)

    def read_after(self, group: str, consumer: str, count: int, keys: Iterable[str]) -> int:
        """Once applied, read ``group``'s next entries for ``consumer`` (XREADGROUP >).

        Returns the read's place in what ``RedisBus.transact`` returns, or -1
        when ``keys`` is empty (nothing is read)."""
        idx = [self.key(k) for k in keys]
        if not idx:
            return -1
        self._reads.append([len(idx), group, consumer, count, *idx])
        return len(self._reads) - 1

    def sadd(self, key: str, member: str) -> None:
        self.ops += ("R", self.key(key), member)

    def args(self, token_ttl_ms: int, fence: Mapping[str, bytes] | None) -> list[bytes | str | int]:
        """ARGV: token TTL, the reads, fence pairs, operations (fence keys join ``keys``)."""
        head: list[bytes | str | int] = [token_ttl_ms, len(self._reads)]
        for spec in self._reads:
            head += spec
        head.append(len(fence or ()))
        for k, v in (fence or {}).items():
            head += (self.key(k), v)
        return head + self.ops

    @property
    def empty(self) -> bool:
        return not self.ops
