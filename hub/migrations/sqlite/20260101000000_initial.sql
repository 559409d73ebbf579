-- The hub's schema. Timestamps are UTC, ISO 8601 with microseconds and a
-- trailing Z (JupyterHub's API form), stored as text so that they sort and
-- compare as strings; JSON values are stored as text.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    admin BOOLEAN NOT NULL DEFAULT FALSE,
    created TEXT NOT NULL,
    last_activity TEXT,
    state TEXT NOT NULL DEFAULT '{}',
    encrypted_auth_state BLOB
);

CREATE TABLE groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    properties TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE user_group_map (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, group_id)
);
CREATE INDEX user_group_map_group ON user_group_map (group_id);

CREATE TABLE services (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    admin BOOLEAN NOT NULL DEFAULT FALSE,
    url TEXT,
    from_config BOOLEAN NOT NULL DEFAULT TRUE,
    pid INTEGER
);

CREATE TABLE roles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    scopes TEXT NOT NULL DEFAULT '[]',
    managed_by_auth BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE user_role_map (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    managed_by_auth BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_id, role_id)
);

CREATE TABLE group_role_map (
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    managed_by_auth BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (group_id, role_id)
);

CREATE TABLE service_role_map (
    service_id INTEGER NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    managed_by_auth BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (service_id, role_id)
);

CREATE TABLE oauth_clients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identifier TEXT NOT NULL UNIQUE,
    description TEXT,
    secret_hash TEXT,
    redirect_uri TEXT,
    allowed_scopes TEXT NOT NULL DEFAULT '[]',
    service_id INTEGER REFERENCES services (id) ON DELETE SET NULL,
    spawner_id INTEGER
);

INSERT INTO oauth_clients (identifier, description) VALUES ('jupyterhub', 'JupyterHub');

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hashed TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    user_id INTEGER REFERENCES users (id) ON DELETE CASCADE,
    service_id INTEGER REFERENCES services (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL DEFAULT 'jupyterhub'
        REFERENCES oauth_clients (identifier) ON DELETE CASCADE,
    session_id TEXT,
    created TEXT NOT NULL,
    expires_at TEXT,
    last_activity TEXT,
    note TEXT NOT NULL DEFAULT '',
    scopes TEXT NOT NULL DEFAULT '[]',
    CHECK ((user_id IS NULL) <> (service_id IS NULL))
);
CREATE INDEX api_tokens_prefix ON api_tokens (prefix);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE api_token_role_map (
    api_token_id INTEGER NOT NULL REFERENCES api_tokens (id) ON DELETE CASCADE,
    role_id INTEGER NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (api_token_id, role_id)
);

CREATE TABLE oauth_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT NOT NULL REFERENCES oauth_clients (identifier) ON DELETE CASCADE,
    code_hash TEXT NOT NULL UNIQUE,
    expires_at TEXT NOT NULL,
    redirect_uri TEXT,
    session_id TEXT,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scopes TEXT NOT NULL DEFAULT '[]',
    code_challenge TEXT,
    code_challenge_method TEXT
);

CREATE TABLE spawners (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL DEFAULT '',
    display_name TEXT,
    pid INTEGER,
    port INTEGER,
    url TEXT,
    started TEXT,
    last_activity TEXT,
    state TEXT NOT NULL DEFAULT '{}',
    user_options TEXT NOT NULL DEFAULT '{}',
    pending TEXT,
    UNIQUE (user_id, name)
);

CREATE TABLE native_users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_authorized BOOLEAN NOT NULL DEFAULT FALSE,
    email TEXT,
    login_failures INTEGER NOT NULL DEFAULT 0,
    locked_until TEXT
);
