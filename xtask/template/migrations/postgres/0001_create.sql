-- name_key is the name in lower case: it makes names unique ignoring case and
-- serves the `name` filter, the same way on every backend.
create table {{name}}.{{name}} (
    id bigint generated always as identity primary key,
    name text not null,
    name_key text not null constraint {{name}}_name_key_key unique,
    version bigint not null default 1,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

-- Every change, as a CloudEvent, written in the transaction of the change:
-- an event exists if and only if its change committed. Writers lock the
-- table first thing and to their commit, so seq is commit order
-- (GET /api/v1/{{name}}/events).
create table {{name}}.events (
    seq bigint generated always as identity primary key,
    id uuid not null unique,
    type text not null,
    subject text not null,
    time timestamptz not null,
    data jsonb not null,
    traceparent text
);

-- How far the relay has published these events to the broker (--broker),
-- by seq: an event leaves the outbox once the broker confirmed it.
create table {{name}}.events_relay (
    id integer primary key check (id = 1),
    seq bigint not null
);

insert into {{name}}.events_relay (id, seq) values (1, 0);
