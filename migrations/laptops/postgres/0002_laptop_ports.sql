-- The ports each laptop lists, in the order written. Port ids point into the
-- ports module, which may live in another database: no foreign key to it.
-- Existing laptops keep every field and list no ports.
create table laptops.laptop_ports (
    laptop_id bigint not null references laptops.laptops (id) on delete cascade,
    port_id bigint not null,
    position integer not null,
    primary key (laptop_id, port_id)
);

create index laptop_ports_port_id on laptops.laptop_ports (port_id, laptop_id);

-- How far this module has followed the ports module's deletions.
create table laptops.port_deletions_seen (
    id integer primary key check (id = 1),
    seq bigint not null
);

insert into laptops.port_deletions_seen (id, seq) values (1, 0);
