-- The feed of deletions gave way to the module's events (port.deleted).
drop trigger ports_record_deletion;
drop table port_deletions;
