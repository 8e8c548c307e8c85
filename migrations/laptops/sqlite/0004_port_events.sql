-- What this module knows of ports, from the ports module's events: each
-- port's id and name at its latest version seen. expand=ports reads it, so
-- it answers while ports is down.
create table port_refs (
    id integer primary key,
    name text not null,
    version integer not null
);

-- The events this module applied, by id, each recorded with its effect: an
-- event delivered again changes nothing.
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

-- The feed of port deletions gave way to the ports module's events.
drop table port_deletions_seen;
