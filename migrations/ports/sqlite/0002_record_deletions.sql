-- Every deleted port, in order, for the modules that refer to ports: they
-- follow this feed to drop their references (GET /api/v1/ports/deletions).
create table port_deletions (
    seq integer primary key autoincrement,
    port_id integer not null,
    deleted_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

create trigger ports_record_deletion after delete on ports
begin
    insert into port_deletions (port_id) values (old.id);
end;
