"""The comparison bench/cache measures the app against: FastAPI serving the
same two laptop endpoints with the same SQL, on SQLite in WAL mode with
synchronous=FULL (every commit is fsynced, as the app's are).

  POST /api/v1/laptops       {"title", "model"} -> 201, Location, ETag
  GET  /api/v1/laptops/{id}  -> 200 with ETag, or 404

The database is the file LAPTOPS_DB names (default ./laptops.db); every
worker process opens it, so each waits up to 5 s for the other's write lock.
Handlers are plain `def`s (the standard library's sqlite3 blocks), run on
the thread pool, one connection per thread; a process writes from one
thread at a time (without that, forty threads a worker retrying SQLite's
lock run past the 5 s and answer 500 "database is locked" under load).
Unlike the app's POST it records no event (the app's writes one to its
outbox in the same transaction), so it does a little less per write.

Run as deployed on 2 cores:
  LAPTOPS_DB=/tmp/laptops.db uvicorn app:app --workers 2 --no-access-log
"""

import json
import os
import sqlite3
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel

DATABASE = os.environ.get("LAPTOPS_DB", "laptops.db")

SCHEMA = """
create table if not exists laptops (
    id integer primary key,
    title text not null,
    title_key text not null,
    model text not null,
    version integer not null default 1,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
create index if not exists laptops_title_key_id on laptops (title_key, id);
create table if not exists laptop_ports (
    laptop_id integer not null references laptops (id) on delete cascade,
    port_id integer not null,
    position integer not null,
    primary key (laptop_id, port_id)
);
create index if not exists laptop_ports_port_id on laptop_ports (port_id, laptop_id);
"""

# The app's query. An aggregate's own `order by` needs SQLite 3.44; before,
# the same array from an ordered subquery.
if sqlite3.sqlite_version_info >= (3, 44):
    PORT_IDS = ("(select json_group_array(port_id order by position) from laptop_ports "
                "where laptop_id = laptops.id)")
else:
    PORT_IDS = ("(select json_group_array(port_id) from (select port_id from laptop_ports "
                "where laptop_id = laptops.id order by position))")
SELECT_LAPTOP = (
    "select id, title, model, version, created_at, updated_at, "
    f"{PORT_IDS} as port_ids from laptops where id = ?"
)

local = threading.local()
# One writer per process at a time: the thread pool's other threads wait
# here rather than in SQLite's busy handler, which sleeps and retries.
write_lock = threading.Lock()


def connect():
    # Autocommit: transactions are begun explicitly.
    conn = sqlite3.connect(DATABASE, timeout=5.0, isolation_level=None, check_same_thread=False)
    conn.execute("pragma busy_timeout = 5000")
    conn.execute("pragma journal_mode = wal")
    conn.execute("pragma synchronous = full")
    conn.execute("pragma foreign_keys = on")
    return conn


def db():
    """This thread's connection."""
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = local.conn = connect()
    return conn


@asynccontextmanager
async def lifespan(_):
    # Both workers run this; `begin immediate` makes one wait for the other.
    conn = connect()
    conn.execute("begin immediate")
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("commit")
    conn.close()
    yield


app = FastAPI(lifespan=lifespan)


class NewLaptop(BaseModel):
    title: str
    model: str


def as_json(row):
    id, title, model, version, created_at, updated_at, port_ids = row
    return {
        "id": id, "title": title, "model": model, "port_ids": json.loads(port_ids),
        "version": version, "created_at": created_at, "updated_at": updated_at,
    }


@app.post("/api/v1/laptops", status_code=201)
def create(laptop: NewLaptop):
    conn = db()
    with write_lock:
        conn.execute("begin immediate")
        try:
            (id,) = conn.execute(
                "insert into laptops (title, title_key, model) values (?, ?, ?) returning id",
                (laptop.title, laptop.title.lower(), laptop.model),
            ).fetchall()[0]
            row = conn.execute(SELECT_LAPTOP, (id,)).fetchone()
            conn.execute("commit")
        except BaseException:
            conn.execute("rollback")
            raise
    return JSONResponse(as_json(row), status_code=201, headers={
        "location": f"/api/v1/laptops/{id}", "etag": f'"{row[3]}"',
    })


@app.get("/api/v1/laptops/{id}")
def get(id: int):
    row = db().execute(SELECT_LAPTOP, (id,)).fetchone()
    if row is None:
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    return JSONResponse(as_json(row), headers={"etag": f'"{row[3]}"'})
