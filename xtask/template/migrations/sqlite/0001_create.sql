-- name_key is the name in lower case: it makes names unique ignoring case and
-- serves the `name` filter, the same way on every backend.
create table {{name}} (
    id integer primary key autoincrement,
    name text not null,
    name_key text not null unique,
{{#needs}}
    -- A port of the ports module: no foreign key crosses modules.
    port_id integer,
{{/needs}}
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
{{#follows}}

-- Finds what a deleted port leaves.
create index {{name}}_port_id on {{name}} (port_id);

-- The events of other modules this module applied, by id: an event
-- delivered again changes nothing.
create table events_handled (
    id text primary key,
    handled_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- How far this module has read each feed it follows, by seq.
create table feeds_read (
    feed text primary key,
    seq integer not null
);

insert into feeds_read (feed, seq) values ('ports', 0);

-- Events this module failed to apply --event-max-attempts times: kept with
-- the last error, out of the way of the events after them, until
-- `app events retry ID` sets retry and the follower applies them again.
create table events_dead (
    id text primary key,
    feed text not null,
    seq integer not null,
    event text not null,
    error text not null,
    attempts integer not null,
    failed_at text not null,
    retry integer not null default 0
);
{{/follows}}
