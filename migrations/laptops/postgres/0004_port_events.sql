-- What this module knows of ports, from the ports module's events: each
-- port's id and name at its latest version seen. expand=ports reads it, so
-- it answers while ports is down.
create table laptops.port_refs (
    id bigint primary key,
    name text not null,
    version bigint not null
);

-- The events this module applied, by id, each recorded with its effect: an
-- event delivered again changes nothing.
create table laptops.events_handled (
    id text primary key,
    handled_at timestamptz not null default now()
);

-- How far this module has read each feed it follows, by seq.
create table laptops.feeds_read (
    feed text primary key,
    seq bigint not null
);

insert into laptops.feeds_read (feed, seq) values ('ports', 0);

-- The feed of port deletions gave way to the ports module's events.
drop table laptops.port_deletions_seen;
