-- name_key is the name in lower case: it makes names unique ignoring case and
-- serves the `name` filter, the same way on every backend.
create table {{name}}.{{name}} (
    id bigint generated always as identity primary key,
    name text not null,
    name_key text not null constraint {{name}}_name_key_key unique,
    version bigint not null default 1,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
