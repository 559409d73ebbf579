//! Usernames: how a name given by a client becomes the hub's name for a
//! user, and which names the hub refuses.
//!
//! A hub username is also the name of a Unix account (the sudo spawner runs
//! servers as that account), so the rule is the safe subset of Unix user
//! names, checked after normalization and before any database row, route or
//! helper call is made for the name:
//!
//! - normalization trims surrounding whitespace and lowercases the name;
//! - the result must match `^[a-z_][a-z0-9_.-]{0,31}$`: 1 to 32 characters,
//!   ASCII lowercase letters, digits, `_`, `-` and `.`, starting with a
//!   letter or `_` (so never with `-`, which a command line would take for
//!   an option, nor with `.`, which rules out `.` and `..`).
//!
//! Non-ASCII letters are refused rather than folded, so look-alike names
//! (Cyrillic `а` for Latin `a`, fullwidth letters) cannot impersonate
//! another account. Because names are lowercased, a client asking for
//! `ALL` gets the user `all`: sudoers' `ALL` keyword is uppercase and
//! case-sensitive, so no hub user can collide with it.

use std::fmt;

/// The longest username accepted (the traditional Unix limit).
pub const MAX_LEN: usize = 32;

/// The rule, as said to clients when a name is refused.
pub const RULE: &str = "usernames must be 1-32 characters of lowercase ASCII letters, digits, \
     '_', '-' or '.', starting with a letter or '_'";

/// Why a name was refused. Its `Display` names the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidName {
    shown: String,
}

impl InvalidName {
    fn new(name: &str) -> Self {
        // Show a bounded, escaped form: names come from clients and end up
        // in logs and error messages.
        let mut shown: String = name.chars().take(40).collect();
        if name.chars().count() > 40 {
            shown.push('…');
        }
        Self {
            shown: format!("{shown:?}"),
        }
    }
}

impl InvalidName {
    /// The refused name as shown in messages and logs: at most 40
    /// characters, quoted and escaped.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Invalid username: {}: {RULE}", self.shown)
    }
}

impl std::error::Error for InvalidName {}

/// Trims and lowercases `raw`, as JupyterHub's `normalize_username`.
pub fn normalize(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// Checks an already normalized name against the rule.
pub fn validate(name: &str) -> Result<(), InvalidName> {
    let bytes = name.as_bytes();
    let first_ok = matches!(bytes.first(), Some(b'a'..=b'z' | b'_'));
    let rest_ok = bytes
        .iter()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.'));
    if first_ok && rest_ok && bytes.len() <= MAX_LEN {
        Ok(())
    } else {
        Err(InvalidName::new(name))
    }
}

/// Normalizes `raw` and validates the result: the hub's name for the user.
pub fn username(raw: &str) -> Result<String, InvalidName> {
    let name = normalize(raw);
    validate(&name)?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in [
            "jhtest-user1",
            "a",
            "_svc",
            "x.y",
            "a-b_c.d9",
            &"a".repeat(32),
        ] {
            assert_eq!(username(name).as_deref(), Ok(name), "{name}");
        }
    }

    #[test]
    fn normalizes_case_and_whitespace() {
        assert_eq!(username("  JHTest-User1 \n").unwrap(), "jhtest-user1");
        // sudoers' ALL keyword cannot be a hub name: it becomes "all".
        assert_eq!(username("ALL").unwrap(), "all");
    }

    #[test]
    fn refuses_hostile_names() {
        let long = "a".repeat(300);
        for name in [
            "",
            "   ",
            "-u root",
            "-u",
            "../x",
            "..",
            ".",
            ".hidden",
            "a b",
            "a/b",
            "a\0b",
            "a\nb",
            "root;id",
            "$(id)",
            "1abc",
            "jhtest-аlice", // Cyrillic а
            "ｊｈｔｅｓｔ", // fullwidth
            "straße",
            &long,
            &"a".repeat(33),
        ] {
            let err = username(name).expect_err(name);
            assert!(err.to_string().contains(RULE), "{err}");
        }
    }

    #[test]
    fn error_is_bounded_and_escaped() {
        let err = username(&format!("{}\n", "-".repeat(300))).unwrap_err();
        assert!(err.to_string().len() < 300, "{err}");
        let err = username("a\u{7}b c").unwrap_err();
        assert!(err.to_string().contains("\\u{7}"), "{err}");
    }
}
