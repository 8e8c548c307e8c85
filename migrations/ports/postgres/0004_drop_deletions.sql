-- The feed of deletions gave way to the module's events (port.deleted).
drop trigger ports_record_deletion on ports.ports;
drop function ports.record_deletion();
drop table ports.port_deletions;
