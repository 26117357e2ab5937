"""Where a data directory lives: a local folder, or a prefix of an S3-compatible bucket.

Everything that must outlive a worker — published Parquet files, leaf files, manifests, the
private quarantine, the batch journal, the workers' heartbeats — is written through a ``Store``,
on pyarrow's filesystems (``LocalFileSystem`` or ``S3FileSystem``). Objects are written whole
(a local write goes to a temporary name and is renamed into place; an S3 PUT is atomic), and
every object a worker writes is either immutable once written or owned by that worker alone
(its journal entries, its heartbeat), so several workers on several machines need no lock.

``--data-dir s3://BUCKET/PREFIX`` selects S3: the endpoint is ``RDA_S3_ENDPOINT`` (or
``AWS_ENDPOINT_URL``), else the object store ``rda infra up`` started; credentials are the
usual ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (the local s3rver's well-known keys when
none are set). The AWS SDK's newer integrity protection (``aws-chunked`` bodies with trailing
checksums) is switched to "when required": s3rver, like several S3-compatible servers, would
store the chunk framing as part of the object.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

import pyarrow.fs as pafs

from infra.object_store import ACCESS_KEY, REGION, SECRET_KEY

S3_SCHEME = "s3://"


def is_remote(location: str | Path) -> bool:
    return str(location).startswith(S3_SCHEME)


def data_location(value: str | Path) -> Path | str:
    """A ``--data-dir`` as given: an ``s3://`` URI stays text (a path would fold its ``//``)."""
    return str(value) if is_remote(value) else Path(value)


@dataclass(frozen=True)
class Store:
    """A data directory's root on a filesystem; paths given to it are relative, ``/``-separated."""

    uri: str
    fs: pafs.FileSystem
    base: str  # the root as the filesystem names it: an absolute path, or "bucket/prefix"
    local: Path | None  # the root on this machine's disk, for a local store

    @classmethod
    def open(cls, location: str | Path) -> Store:
        if is_remote(location):
            return _s3_store(str(location))
        root = Path(location).absolute()
        return cls(str(root), pafs.LocalFileSystem(), root.as_posix(), root)

    def __str__(self) -> str:
        return self.uri

    def path(self, relative: str) -> str:
        return f"{self.base}/{relative}" if relative else self.base

    # -- reading ----------------------------------------------------------------------------

    def read_bytes(self, relative: str) -> bytes:
        """The object's bytes; ``FileNotFoundError`` when there is none."""
        if self.local is not None:
            return (self.local / relative).read_bytes()
        try:
            with self.fs.open_input_stream(self.path(relative)) as stream:
                return stream.read()
        except (FileNotFoundError, OSError) as error:
            if self._missing(relative):
                raise FileNotFoundError(f"{self.uri}/{relative}") from None
            raise error

    def read_json(self, relative: str) -> Any:
        return json.loads(self.read_bytes(relative))

    def exists(self, relative: str) -> bool:
        return not self._missing(relative)

    def mtime(self, relative: str) -> float | None:
        """When the object was last written (seconds since the epoch), or None."""
        info = self.fs.get_file_info(self.path(relative))
        if info.type == pafs.FileType.NotFound or info.mtime is None:
            return None
        return info.mtime.timestamp()

    def list(self, prefix: str, suffix: str = "") -> list[str]:
        """Every object under ``prefix`` (recursively) whose name ends with ``suffix``, sorted."""
        selector = pafs.FileSelector(self.path(prefix), recursive=True, allow_not_found=True)
        start = len(self.base) + 1
        found = [
            info.path[start:]
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File and info.path.endswith(suffix)
        ]
        return sorted(p for p in found if ".partial" not in p.rsplit("/", 1)[-1])

    def list_folder(self, prefix: str, suffix: str = "") -> list[str]:
        """``list`` of the objects directly in the folder ``prefix``, sorted. On a local disk
        from the folder's names alone, without a ``stat`` of each object (~4x faster: the
        journal's folders hold one object per batch, listed several times a batch)."""
        if self.local is None:
            return [p for p in self.list(prefix, suffix) if "/" not in p[len(prefix) + 1 :]]
        try:
            with os.scandir(self.local / prefix) as found:
                names = [e.name for e in found if e.name.endswith(suffix) and e.is_file()]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(f"{prefix}/{n}" for n in names if ".partial" not in n)

    def _missing(self, relative: str) -> bool:
        return self.fs.get_file_info(self.path(relative)).type == pafs.FileType.NotFound

    # -- writing ----------------------------------------------------------------------------

    def write_bytes(self, relative: str, data: bytes, durable: bool = False) -> None:
        """Write the whole object at once; ``durable``: on a local disk, forced to it."""
        if self.local is None:
            with self.fs.open_output_stream(self.path(relative)) as stream:
                stream.write(data)
            return
        path = self.local / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
        with _new_file(partial, relative) as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(partial, path)

    def create(self, relative: str, data: bytes) -> bool:
        """Write the object only if there is none yet; whether this call wrote it.

        Atomic on a local disk (a hard link fails if the name exists). S3 has no such
        operation (s3rver has no conditional PUT): there, a check then a write."""
        if self.local is None:
            if self.exists(relative):
                return False
            self.write_bytes(relative, data)
            return True
        path = self.local / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
        with _new_file(partial, relative) as handle:
            handle.write(data)
        try:
            os.link(partial, path)
        except FileExistsError:
            return False
        finally:
            partial.unlink()
        return True

    def write_json(self, relative: str, value: Any, durable: bool = False) -> None:
        self.write_bytes(relative, (json.dumps(value, sort_keys=True) + "\n").encode(), durable)

    def delete(self, relative: str) -> None:
        with contextlib.suppress(FileNotFoundError, OSError):
            self.fs.delete_file(self.path(relative))

    def put_file(self, local_file: Path, relative: str) -> None:
        """Upload a local file to ``relative`` (nothing to do when it is that very file)."""
        if self.local is not None:
            target = self.local / relative
            if target.absolute() == local_file.absolute():
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
            shutil.copyfile(local_file, partial)
            if _owner_only(relative):
                os.chmod(partial, OWNER_ONLY)
            os.replace(partial, target)
            return
        pafs.copy_files(
            str(local_file),
            self.path(relative),
            source_filesystem=pafs.LocalFileSystem(),
            destination_filesystem=self.fs,
        )

    def get_file(self, relative: str, local_file: Path) -> Path:
        """Download ``relative`` to ``local_file`` (the file itself, for a local store)."""
        if self.local is not None and (self.local / relative).absolute() == local_file.absolute():
            return local_file
        local_file.parent.mkdir(parents=True, exist_ok=True)
        partial = local_file.with_name(f"{local_file.name}.partial-{os.getpid()}")
        with _new_file(partial, relative) as handle:
            handle.write(self.read_bytes(relative))
        os.replace(partial, local_file)
        return local_file

    def mirror(self, prefix: str, local_root: Path) -> int:
        """Copy every object under ``prefix`` that ``local_root`` lacks (or holds with another
        size) to the same relative path there; the number of objects copied. Objects are
        written once and never changed (manifests and data are content-checked on use)."""
        copied = 0
        selector = pafs.FileSelector(self.path(prefix), recursive=True, allow_not_found=True)
        start = len(self.base) + 1
        for info in self.fs.get_file_info(selector):
            if info.type != pafs.FileType.File or ".partial" in info.base_name:
                continue
            relative = info.path[start:]
            target = local_root / relative
            if target.exists() and target.stat().st_size == info.size:
                continue
            self.get_file(relative, target)
            copied += 1
        return copied


def readable_copy(location: str | Path, prefix: str = "published") -> Path:
    """A local folder holding the data directory's ``prefix`` side, for readers (auditors,
    buyers): the folder itself when the data directory is local; for S3, a copy under
    ``RDA_STATE_DIR/mirror/`` brought up to date with the store (objects are written once and
    never changed; every reader checks what it reads against manifests and anchors anyway)."""
    if not is_remote(location):
        return Path(location)
    from infra.state import state_dir

    store = Store.open(location)
    local = state_dir() / "mirror" / hashlib.sha256(store.uri.encode()).hexdigest()[:16]
    store.mirror(prefix, local)
    return local


def _s3_store(uri: str) -> Store:
    parsed = urlparse(uri)
    bucket, prefix = parsed.netloc, parsed.path.strip("/")
    if not bucket:
        raise ValueError(f"{uri}: an S3 data directory is s3://BUCKET/PREFIX")
    fs = s3_filesystem()
    if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
        fs.create_dir(bucket)
    base = f"{bucket}/{prefix}" if prefix else bucket
    return Store(uri.rstrip("/"), fs, base, None)


def s3_endpoint() -> str | None:
    endpoint = os.environ.get("RDA_S3_ENDPOINT") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        return endpoint
    from infra.state import InfraState

    return InfraState.load().object_store


def s3_filesystem() -> pafs.S3FileSystem:
    """pyarrow's S3 client for the configured endpoint (see the module docstring)."""
    os.environ.setdefault("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
    os.environ.setdefault("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required")
    endpoint = s3_endpoint()
    options: dict[str, Any] = {
        "region": os.environ.get("AWS_DEFAULT_REGION", REGION),
        "allow_bucket_creation": True,
        "connect_timeout": 5,
        "request_timeout": 30,
    }
    if endpoint:
        url = urlparse(endpoint)
        options["endpoint_override"] = url.netloc or url.path
        options["scheme"] = url.scheme or "http"
    options["access_key"] = os.environ.get("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    options["secret_key"] = os.environ.get("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    return pafs.S3FileSystem(**options)


OWNER_ONLY = 0o600  # a copy of something under private/ (the keys above all), whatever the umask


def _owner_only(relative: str) -> bool:
    return relative.startswith("private/")


def _new_file(path: Path, relative: str) -> BinaryIO:
    """``path`` opened to write anew: ``OWNER_ONLY`` when it is a copy of something under
    ``private/``; else as the umask says."""
    private = _owner_only(relative)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, OWNER_ONLY if private else 0o666)
    if private:
        os.fchmod(fd, OWNER_ONLY)  # a file left there by an earlier attempt keeps its old mode
    return os.fdopen(fd, "wb")
