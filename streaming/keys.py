"""The data directory's keys, shared by every worker: the publisher's signing key and the
pseudonym master key live on the store's private side and are copied to each work directory.

The first worker of a new data directory makes them (``proofs.signing``, ``pipelines.anonymize``)
and uploads them; a later worker downloads them. Two workers starting at the very same moment on
an empty S3 data directory could each upload their own: each then re-reads what the store holds
and uses that, so they converge unless their uploads cross within that moment. Start one worker
first on a new S3 data directory (or set ``RDA_PSEUDONYM_KEY`` and place the keys yourself).
"""

from __future__ import annotations

from pipelines.anonymize import PseudonymKey
from proofs.signing import KEY_FILE, PUBLIC_FILE, PublisherKey, publisher_key
from streaming.store import Workspace

SHARED = (
    f"private/{KEY_FILE.as_posix()}",
    "private/keys/pseudonym.key",
    f"published/{PUBLIC_FILE}",
)
_shared: dict[str, PublisherKey] = {}


def shared_keys(space: Workspace) -> PublisherKey:
    """The publisher key of ``space``'s data directory, its keys in the work directory too."""
    if not space.separate:
        return publisher_key(space.work.root)
    cached = _shared.get(space.store.uri + str(space.work.root))
    if cached is not None:
        return cached
    store, work = space.store, space.work.root
    for name in SHARED:
        if store.exists(name):
            store.get_file(name, work / name)
    publisher_key(work)
    PseudonymKey.load(work / "private")
    made = [name for name in SHARED if (work / name).exists() and not store.exists(name)]
    for name in made:
        store.put_file(work / name, name)
    for name in made:  # another worker may have uploaded its own meanwhile: the store wins
        store.get_file(name, work / name)
    key = _shared[store.uri + str(work)] = publisher_key(work)
    return key
