-- A native account and the hub user of the same name are one person:
-- deleting the user (through the REST API, or the culler) deletes the
-- account too, as NativeAuthenticator's delete_user does, and renaming the
-- user renames the account, so its password keeps reaching the same user.
-- A rename onto the name of another native account fails (UNIQUE) rather
-- than hand that account the renamed user's servers and tokens.

CREATE TRIGGER native_users_follow_user_delete AFTER DELETE ON users
BEGIN
    DELETE FROM native_users WHERE username = OLD.name;
END;

CREATE TRIGGER native_users_follow_user_rename AFTER UPDATE OF name ON users
BEGIN
    UPDATE native_users SET username = NEW.name WHERE username = OLD.name;
END;
