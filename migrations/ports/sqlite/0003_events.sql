-- Every change to a port, as a CloudEvent, written in the transaction of the
-- change: an event exists if and only if its change committed. Writes are
-- serialized, so seq is commit order. Other modules follow them by seq
-- (GET /api/v1/ports/events).
create table events (
    seq integer primary key autoincrement,
    id text not null unique,
    type text not null,
    subject text not null,
    time text not null,
    data text not null,
    traceparent text
);

-- Deletions recorded before events, which a follower may not have read
-- yet: applying one again changes nothing. Their last version is not known.
insert into events (id, type, subject, time, data)
select lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))),
       'port.deleted', cast(port_id as text), deleted_at,
       json_object('id', port_id, 'version', 0)
from port_deletions order by seq;

-- The ports there are already were created before events were recorded.
insert into events (id, type, subject, time, data)
select lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))),
       'port.created', cast(id as text), created_at,
       json_object('id', id, 'name', name, 'created_at', created_at,
                   'updated_at', updated_at, 'version', version)
from ports order by id;
