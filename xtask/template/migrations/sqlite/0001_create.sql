-- name_key is the name in lower case: it makes names unique ignoring case and
-- serves the `name` filter, the same way on every backend.
create table {{name}} (
    id integer primary key autoincrement,
    name text not null,
    name_key text not null unique,
    version integer not null default 1,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
