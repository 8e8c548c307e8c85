-- name_key is the name in lower case: it makes names unique ignoring case and
-- serves the `name` filter, the same way on every backend.
create table {{name}}.{{name}} (
    id bigint generated always as identity primary key,
    name text not null,
    name_key text not null constraint {{name}}_name_key_key unique,
{{#needs}}
    -- A port of the ports module: no foreign key crosses modules.
    port_id bigint,
{{/needs}}
    version bigint not null default 1,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- Every change, as a CloudEvent, written in the transaction of the change:
-- an event exists if and only if its change committed. Writers run side by
-- side: an event gets its insert order (n) when it is written, and its
-- place in the feed (seq) once it committed, from whichever reader of the
-- feed reads first (GET /api/v1/{{name}}/events; ADR 17).
create table {{name}}.events (
    n bigint generated always as identity primary key,
    seq bigint constraint events_seq_key unique,
    id uuid not null unique,
    type text not null,
    subject text not null,
    time timestamptz not null,
    data jsonb not null,
    traceparent text
);

-- The events still to number, in the order they get their seq.
create index events_unsequenced on {{name}}.events (n) where seq is null;

-- How far the relay has published these events to the broker (--broker),
-- by seq: an event leaves the outbox once the broker confirmed it.
create table {{name}}.events_relay (
    id integer primary key check (id = 1),
    seq bigint not null
);

insert into {{name}}.events_relay (id, seq) values (1, 0);
{{#follows}}

-- Finds what a deleted port leaves.
create index {{name}}_port_id on {{name}}.{{name}} (port_id);

-- The events of other modules this module applied, by id: an event
-- delivered again changes nothing.
create table {{name}}.events_handled (
    id text primary key,
    handled_at timestamptz not null default now()
);

-- How far this module has read each feed it follows, by seq.
create table {{name}}.feeds_read (
    feed text primary key,
    seq bigint not null
);

insert into {{name}}.feeds_read (feed, seq) values ('ports', 0);

-- Events this module failed to apply --event-max-attempts times: kept with
-- the last error, out of the way of the events after them, until
-- `app events retry ID` sets retry and the follower applies them again.
create table {{name}}.events_dead (
    id text primary key,
    feed text not null,
    seq bigint not null,
    event jsonb not null,
    error text not null,
    attempts bigint not null,
    failed_at timestamptz not null,
    retry boolean not null default false
);
{{/follows}}
