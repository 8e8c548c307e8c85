-- Every change to a port, as a CloudEvent, written in the transaction of the
-- change: an event exists if and only if its change committed. Writers lock
-- the table first thing and to their commit, so seq is commit order.
-- Other modules follow them by seq (GET /api/v1/ports/events).
create table ports.events (
    seq bigint generated always as identity primary key,
    id uuid not null unique,
    type text not null,
    subject text not null,
    time timestamptz not null,
    data jsonb not null,
    traceparent text
);

-- Deletions recorded before events, which a follower may not have read
-- yet: applying one again changes nothing. Their last version is not known.
insert into ports.events (id, type, subject, time, data)
select gen_random_uuid(), 'port.deleted', port_id::text, deleted_at,
       jsonb_build_object('id', port_id, 'version', 0)
from ports.port_deletions order by seq;

-- The ports there are already were created before events were recorded.
insert into ports.events (id, type, subject, time, data)
select gen_random_uuid(), 'port.created', id::text, created_at,
       jsonb_build_object('id', id, 'name', name, 'created_at', created_at,
                          'updated_at', updated_at, 'version', version)
from ports.ports order by id;
