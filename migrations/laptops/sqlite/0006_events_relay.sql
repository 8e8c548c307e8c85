-- How far the relay has published this module's events to the broker
-- (--broker), by seq: an event leaves the outbox once the broker confirmed
-- it, and is published again after a crash before that.
create table events_relay (
    id integer primary key check (id = 1),
    seq integer not null
);

insert into events_relay (id, seq) values (1, 0);
