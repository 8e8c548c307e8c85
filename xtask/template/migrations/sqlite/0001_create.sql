-- name_key is the name in lower case: it makes names unique ignoring case and
-- serves the `name` filter, the same way on every backend.
create table {{name}} (
    id integer primary key autoincrement,
    name text not null,
    name_key text not null unique,
    version integer not null default 1,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Every change, as a CloudEvent, written in the transaction of the change:
-- an event exists if and only if its change committed. Writes are
-- serialized, so seq is commit order (GET /api/v1/{{name}}/events).
create table events (
    seq integer primary key autoincrement,
    id text not null unique,
    type text not null,
    subject text not null,
    time text not null,
    data text not null,
    traceparent text
);

-- How far the relay has published these events to the broker (--broker),
-- by seq: an event leaves the outbox once the broker confirmed it.
create table events_relay (
    id integer primary key check (id = 1),
    seq integer not null
);

insert into events_relay (id, seq) values (1, 0);
