"""A worker's catalog learns the files other workers added to its shards.

Before a batch's duplicate check, every file of the shards it writes to must be in the worker's
catalog, whichever worker published it (a shard changes hands when the group rebalances), so
that their natural keys are indexed. A shard's files are those of its chain of manifests
(``proofs/shard_chain.py``); the catalog keeps, per shard, the anchored head up to which it
lists every file (its **mark**), and a batch reads the chain back to that mark only — not the
shard's whole history, which grows with the stream's age.
"""

from __future__ import annotations

from collections.abc import Callable

from proofs.shard_chain import back_to
from sinks.catalog import Catalog
from streaming.checkpoints import Checkpoints, dataset_path

MARK_AFTER_LINKS = 16  # a shard's mark moves once a batch reads this many of its manifests


def hydrate(
    catalog: Catalog,
    checkpoints: Checkpoints,
    heads: list[tuple[str, dict]],
    fetch: Callable[[str], None],
) -> None:
    """Register in ``catalog`` the files of the shards' chains it does not list yet (``heads``:
    (dataset, anchored shard head) pairs); ``fetch(path)`` brings one to the work directory."""
    marks = catalog.hydrated_heads([h["shard"] for _, h in heads])
    found: dict[str, tuple[str, dict]] = {}
    walked = {}  # shard -> the manifests read back to its mark
    for dataset, head in heads:
        mark = marks.get(head["shard"])
        if mark != head["manifest_sha256"]:
            links = links_since(checkpoints, dataset, head, mark)
            walked[head["shard"]] = len(links)
            for entry in (e for link in links for e in link["files"]):
                found[dataset_path(dataset, entry["path"])] = (dataset, entry)
    listed = catalog.listed_paths(list(found))
    missing = []
    for path, (dataset, entry) in found.items():
        if path in listed or "batch_id" not in entry:
            continue
        fetch(path)
        missing.append({**entry, **entry["source"], "path": path, "dataset": dataset})
    for batch_id in sorted({f["batch_id"] for f in missing}):
        catalog.register_files(batch_id, [f for f in missing if f["batch_id"] == batch_id])
    # A catalog write costs ~2-9 ms in a batch: a mark moves once its shard's walk is long, or
    # when files were registered, not for the one link a worker's own last batch added.
    if missing or max(walked.values(), default=0) >= MARK_AFTER_LINKS:
        catalog.mark_hydrated({h["shard"]: h["manifest_sha256"] for _, h in heads})


def links_since(checkpoints: Checkpoints, dataset: str, head: dict, mark: str | None) -> list[dict]:
    """A shard's manifests from its anchored ``head`` back to the one whose hash is ``mark``
    (excluded; the whole chain without one), newest first. A shard's anchored heads form one
    chain, so an earlier mark is on it."""

    def load(relative: str, digest: str) -> dict:
        return checkpoints.manifest(dataset, relative, digest)

    manifest = load(head["manifest_path"], head["manifest_sha256"])
    return back_to(head["shard"], manifest, load, mark)
