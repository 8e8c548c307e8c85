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
