"""The data directory's keys, shared by every worker: the publisher's signing key and the
pseudonym master key live on the store's private side and are copied to each work directory.

The first worker of a new data directory makes them (``proofs.signing``, ``pipelines.anonymize``)
and stores them only if none are there yet; every worker then uses what the store holds. On a
local (or shared) file system that "only if none" is atomic, so workers started together agree.
S3 has no conditional write here: two workers starting in the same instant on an empty S3 data
directory could each store their own, and the second one's wins. Start one worker first on a new
S3 data directory (or set ``RDA_PSEUDONYM_KEY`` and place the keys yourself).
"""

from __future__ import annotations

from pathlib import Path

from pipelines.anonymize import PseudonymKey
from proofs.signing import KEY_FILE, PUBLIC_FILE, PublisherKey, publisher_key
from sinks.layout import DataLayout
from streaming.store import Workspace

SHARED = (
    f"private/{KEY_FILE.as_posix()}",
    "private/keys/pseudonym.key",
    f"published/{PUBLIC_FILE}",
)
_shared: dict[str, PublisherKey] = {}


def shared_keys(space: Workspace) -> PublisherKey:
    """The publisher key of ``space``'s data directory, its keys in the work directory too.
    Every batch asks for it before it writes anything private: ``private/`` is made here, its
    owner's alone, in the work directory and in a local data directory."""
    space.work.seal_private()
    if not space.separate:
        return publisher_key(space.work.root)
    cached = _shared.get(space.store.uri + str(space.work.root))
    if cached is not None:
        return cached
    store, work = space.store, space.work.root
    if store.local is not None:
        DataLayout(Path(store.local)).seal_private()
    for name in SHARED:
        if store.exists(name):
            store.get_file(name, work / name)
    publisher_key(work)
    PseudonymKey.load(work / "private")
    for name in SHARED:
        if (work / name).exists():
            store.create(name, (work / name).read_bytes())  # unless another worker was first
            store.get_file(name, work / name)  # the store's wins
    key = _shared[store.uri + str(work)] = publisher_key(work)
    return key
