-- Events this module failed to apply --event-max-attempts times: kept with
-- the last error, out of the way of the events after them, until
-- `app events retry ID` sets retry and the follower applies them again.
create table laptops.events_dead (
    id text primary key,
    feed text not null,
    seq bigint not null,
    event jsonb not null,
    error text not null,
    attempts bigint not null,
    failed_at timestamptz not null,
    retry boolean not null default false
);
