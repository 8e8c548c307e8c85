-- title_key is the title in lower case, for the `title` filter.
create table laptops.laptops (
    id bigint generated always as identity primary key,
    title text not null,
    title_key text not null,
    model text not null,
    version bigint not null default 1,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create index laptops_title_key_id on laptops.laptops (title_key, id);
