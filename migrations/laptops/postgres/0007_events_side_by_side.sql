-- Writers no longer take turns on the events table (ADR 17): an event gets
-- its insert order (n) when it is written, and its place in the feed (seq)
-- once it committed, from whichever reader of the feed reads first. The
-- events there committed under the old table lock, in seq order.
alter table laptops.events rename column seq to n;
alter table laptops.events add column seq bigint;
update laptops.events set seq = n;
alter table laptops.events add constraint events_seq_key unique (seq);
-- The events still to number, in the order they get their seq.
create index events_unsequenced on laptops.events (n) where seq is null;
