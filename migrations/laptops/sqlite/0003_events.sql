-- Every change to a laptop, as a CloudEvent, written in the transaction of
-- the change: an event exists if and only if its change committed. Writes
-- are serialized, so seq is commit order (GET /api/v1/laptops/events).
create table events (
    seq integer primary key autoincrement,
    id text not null unique,
    type text not null,
    subject text not null,
    time text not null,
    data text not null,
    traceparent text
);

-- The laptops there are already were created before events were recorded.
insert into events (id, type, subject, time, data)
select lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))),
       'laptop.created', cast(id as text), created_at,
       json_object('id', id, 'title', title, 'model', model,
                   'port_ids', json((select json_group_array(port_id order by position)
                                     from laptop_ports where laptop_id = laptops.id)),
                   'created_at', created_at, 'updated_at', updated_at, 'version', version)
from laptops order by id;
