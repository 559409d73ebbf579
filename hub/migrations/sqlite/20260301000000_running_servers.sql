-- Running servers: what the hub needs to find a server again after a
-- restart, and to be sure the process it finds is the one it started.
--
-- start_time: the process's start time in clock ticks after boot (field 22
-- of /proc/PID/stat), read right after the spawn. A PID the kernel has
-- given to another process since has another start time.
-- api_token_id: the server's own API token (JUPYTERHUB_API_TOKEN), deleted
-- when the server stops.
-- failure: why the last start failed, shown until the next start.

ALTER TABLE spawners ADD COLUMN start_time INTEGER;
ALTER TABLE spawners ADD COLUMN api_token_id INTEGER REFERENCES api_tokens (id) ON DELETE SET NULL;
ALTER TABLE spawners ADD COLUMN failure TEXT;
CREATE INDEX spawners_running ON spawners (pid) WHERE pid IS NOT NULL;
