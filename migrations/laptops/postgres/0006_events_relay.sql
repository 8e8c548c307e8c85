-- How far the relay has published this module's events to the broker
-- (--broker), by seq: an event leaves the outbox once the broker confirmed
-- it, and is published again after a crash before that.
create table laptops.events_relay (
    id integer primary key check (id = 1),
    seq bigint not null
);

-- What is already in the outbox, followers read from the feed when they
-- subscribe: the relay starts after it, not publishing the history again.
insert into laptops.events_relay (id, seq) select 1, coalesce(max(seq), 0) from laptops.events;
