-- Every deleted port, in order, for the modules that refer to ports: they
-- follow this feed to drop their references (GET /api/v1/ports/deletions).
create table ports.port_deletions (
    seq bigint generated always as identity primary key,
    port_id bigint not null,
    deleted_at timestamptz not null default now()
);

-- The lock makes deletions commit in the order of their seq, so a reader
-- that has seen seq N never later finds a smaller one appear.
create function ports.record_deletion() returns trigger language plpgsql as $$
begin
    lock table ports.port_deletions in share row exclusive mode;
    insert into ports.port_deletions (port_id) values (old.id);
    return old;
end
$$;

create trigger ports_record_deletion after delete on ports.ports
    for each row execute function ports.record_deletion();
