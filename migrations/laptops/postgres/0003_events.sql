-- Every change to a laptop, as a CloudEvent, written in the transaction of
-- the change: an event exists if and only if its change committed. Writers
-- lock the table first thing and to their commit, so seq is commit order
-- (GET /api/v1/laptops/events).
create table laptops.events (
    seq bigint generated always as identity primary key,
    id uuid not null unique,
    type text not null,
    subject text not null,
    time timestamptz not null,
    data jsonb not null,
    traceparent text
);

-- The laptops there are already were created before events were recorded.
insert into laptops.events (id, type, subject, time, data)
select gen_random_uuid(), 'laptop.created', id::text, created_at,
       jsonb_build_object('id', id, 'title', title, 'model', model,
                          'port_ids', coalesce((select jsonb_agg(port_id order by position)
                                                from laptops.laptop_ports
                                                where laptop_id = laptops.id), '[]'::jsonb),
                          'created_at', created_at, 'updated_at', updated_at, 'version', version)
from laptops.laptops order by id;
