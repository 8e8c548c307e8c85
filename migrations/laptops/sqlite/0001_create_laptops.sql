-- title_key is the title in lower case, for the `title` filter.
create table laptops (
    id integer primary key autoincrement,
    title text not null,
    title_key text not null,
    model text not null,
    version integer not null default 1,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

create index laptops_title_key_id on laptops (title_key, id);
