"""The rule every copy of another service's facts follows: the owner's order, never business time.

An owner publishes a `version` with each event carrying state others copy (stage.changed, stage.cleared,
customer.value_updated, customer.updated, segment.membership_changed): per customer (per customer and segment
for a membership) strictly increasing in the order the owner's changes commit. A copy stores the version with the
copied state and applies an event only if its version is greater. Events published before versions existed carry
none: they are applied by their business time only while the copy holds no version either, and ignored once it
does (a versioned copy is always newer than them).
"""

from collections.abc import Callable, Hashable, Iterable
from datetime import datetime
from typing import TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def supersedes(new_version: int | None, new_time: datetime | None, old_version: int | None, old_time: datetime | None) -> bool:
    """Whether an event (version, business time) replaces what a copy holds."""
    if new_version is not None:
        return old_version is None or new_version > old_version
    return old_version is None and (old_time is None or new_time is None or new_time >= old_time)


def latest_per_key(
    items: Iterable[T], key: Callable[[T], K], version: Callable[[T], int | None], time: Callable[[T], datetime | None]
) -> dict[K, T]:
    """The item that supersedes all others per key (a batch folded before it is written)."""
    out: dict[K, T] = {}
    for item in items:
        k = key(item)
        if k not in out or supersedes(version(item), time(item), version(out[k]), time(out[k])):
            out[k] = item
    return out


def sql_supersedes(version: str, time: str, table: str = "s", incoming: str = "EXCLUDED") -> str:
    """`supersedes` as an SQL condition, for the WHERE of an upsert's DO UPDATE (column names as given)."""
    n, o = f"{incoming}.{version}", f"{table}.{version}"
    return (
        f"(({n} IS NOT NULL AND ({o} IS NULL OR {o} < {n})) OR "
        f"({n} IS NULL AND {o} IS NULL AND ({table}.{time} IS NULL OR {table}.{time} <= {incoming}.{time})))"
    )
