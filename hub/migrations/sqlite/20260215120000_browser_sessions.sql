-- Browser sessions: one row per login. The login cookie holds a random id
-- (signed with the cookie secret); only its SHA-256 is stored here. Logout
-- deletes the row, so the cookie stops working even if it was copied.

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hashed TEXT NOT NULL UNIQUE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    last_activity TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);
