"""The catalog's views over Parquet files: made once, current as files are listed.

A view over a literal list of files has to be made again each time a file is added, and making
it reads the footer of every file (``union_by_name``): ~250 ms a batch once a stream has written
~6,000 files, growing with its age. A view here reads the folders its files are in (one
``<folder>/*.parquet`` pattern each: DuckDB's ``**`` does not follow a symlinked folder) and
keeps the rows of the files a catalog table lists, a filter DuckDB applies to the scan's file
list (files it drops are not opened). Listing a file is then all it takes for the view to show
it; a view is made again only when its definition changes (a new folder, such as a new
partition's shard, a new data directory path, a catalog from before these views). Files are in
their folder before they are listed (published, anchored, then registered), so the view never
shows rows the catalog does not list.

The folders are the pipeline's: a Parquet file put there by hand that the catalog does not
list shows no rows, but its columns join the view's (as nulls), and one that is not Parquet
makes the view unreadable until it is removed (DuckDB reads every footer to join the columns
by name).

Definitions are kept in ``catalog_views``, the folders of each listing in ``listed_folders``. A
path a glob would misread (``*?[]{}``) gets the old kind of view, over the listed files
themselves, made again each time. A view that cannot be made is logged and left as it was: it
is the readers' convenience, and the batch whose files it would show is anchored already.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Iterable, Mapping
from pathlib import Path

import duckdb

from sinks.sql import insert_rows, sql_identifier, sql_string

DDL = """
CREATE TABLE IF NOT EXISTS catalog_views (view_name VARCHAR PRIMARY KEY, definition VARCHAR);
CREATE TABLE IF NOT EXISTS listed_folders (
    listing VARCHAR, folder VARCHAR, PRIMARY KEY (listing, folder));
"""
FILE_COLUMN = "_rda_file"  # each row's file, in the view's query only (never in its columns)
_GLOB_CHARACTERS = frozenset("*?[]{}")
log = logging.getLogger("rda.catalog")


def add_folders(db: duckdb.DuckDBPyConnection, listed: Mapping[str, Iterable[str]]) -> None:
    """Note the folders of the files each listing (a dataset, the quarantine) now lists
    (listing -> paths relative to the data directory). Only folders not noted yet are
    inserted, in one statement: a batch's files are mostly in folders noted already, and an
    ``INSERT OR IGNORE`` that inserts nothing still cost ~1.3 ms a listing."""
    wanted = {(name, posixpath.dirname(p)) for name, paths in listed.items() for p in paths}
    if not wanted:
        return
    noted = db.execute(
        "SELECT listing, folder FROM listed_folders WHERE listing IN (SELECT UNNEST(?::VARCHAR[]))",
        [sorted({name for name, _ in wanted})],
    ).fetchall()
    insert_rows(db, "INSERT OR IGNORE INTO listed_folders", sorted(wanted - set(noted)))


def made_views(db: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The definition of each view made here that still exists in this catalog."""
    rows = db.execute(
        "SELECT view_name, definition FROM catalog_views WHERE view_name IN "
        "(SELECT view_name FROM duckdb_views() WHERE database_name = current_database())"
    ).fetchall()
    return dict(rows)


def refresh_view(
    db: duckdb.DuckDBPyConnection,
    view: str,
    root: Path,
    listing: tuple[str, str],
    body: str,
    made: dict[str, str] | None = None,
) -> None:
    """Make ``view`` over the Parquet files ``listing`` names — (its name in
    ``listed_folders``, a query of the files' paths relative to ``root``) — unless it is made
    so already or lists none.

    ``body`` is the view's query, with ``{files}``: a ``read_parquet`` relation of the files
    (by column name, with ``FILE_COLUMN``), and ``{listed}``: the condition keeping the listed
    files' rows. ``made``: ``made_views(db)``, when several views are refreshed at once.
    """
    made = made_views(db) if made is None else made
    name, query = listing
    if view not in made:  # first made here (or by an older catalog): every folder noted
        add_folders(db, {name: [path for (path,) in db.execute(query).fetchall()]})
    folders = db.execute(
        "SELECT folder FROM listed_folders WHERE listing = ? ORDER BY folder", [name]
    ).fetchall()
    if not folders:  # nothing to read yet: read_parquet refuses an empty list
        return
    base = str(root.resolve())
    if _GLOB_CHARACTERS.isdisjoint(base + "".join(folder for (folder,) in folders)):
        patterns = [posixpath.join(base, folder, "*.parquet") for (folder,) in folders]
    else:
        patterns = [f"{base}/{path}" for (path,) in db.execute(query).fetchall()]
    source = "[" + ", ".join(sql_string(p) for p in patterns) + "]"
    files = f"read_parquet({source}, union_by_name = true, filename = '{FILE_COLUMN}')"
    listed = f"{FILE_COLUMN} IN (SELECT {sql_string(base + '/')} || path FROM ({query}))"
    definition = body.format(files=files, listed=listed)
    if made.get(view) == definition:
        return
    try:
        db.execute(f"CREATE OR REPLACE VIEW {sql_identifier(view)} AS {definition}")
    except duckdb.Error as error:
        log.warning("the catalog view %s is not made again: %s", view, error)
        return
    db.execute("INSERT OR REPLACE INTO catalog_views VALUES (?, ?)", [view, definition])
