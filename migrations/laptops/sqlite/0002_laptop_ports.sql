-- The ports each laptop lists, in the order written. Port ids point into the
-- ports module, which may live in another database: no foreign key to it.
-- Existing laptops keep every field and list no ports.
create table laptop_ports (
    laptop_id integer not null references laptops (id) on delete cascade,
    port_id integer not null,
    position integer not null,
    primary key (laptop_id, port_id)
);

create index laptop_ports_port_id on laptop_ports (port_id, laptop_id);

-- How far this module has followed the ports module's deletions.
create table port_deletions_seen (
    id integer primary key check (id = 1),
    seq integer not null
);

insert into port_deletions_seen (id, seq) values (1, 0);
