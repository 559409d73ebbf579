//! Browser sessions: the signed login cookie, the session rows behind
//! it, and the XSRF token that every state-changing browser request
//! carries.
//!
//! - **Keys.** Everything is keyed by the cookie secret
//!   ([`crate::secret`]): [`SessionKeys`] derives one key per purpose
//!   with HMAC-SHA256 (the cookie signing key, the XSRF key), so a new
//!   secret invalidates every cookie and every XSRF token at once.
//! - **Login cookie** ([`SESSION_COOKIE`], JupyterHub's name): a random
//!   session id, signed with the `cookie` crate's `SignedJar` (the signed
//!   text starts with the cookie's name, so a value cannot move between
//!   cookies). The database keeps only the id's SHA-256 in the
//!   `sessions` table, with the user and an expiry; logout deletes the row,
//!   so a copy of the cookie is worthless afterwards, and a database leak
//!   gives no usable session. The cookie is `HttpOnly`, `SameSite=Lax`,
//!   `Path=/hub/`, and `Secure` when the public URL is https.
//! - **XSRF.** A form carries `_xsrf` (or a request the header
//!   `X-XSRFToken`): HMAC-SHA256 under the XSRF key of the session id
//!   when logged in, else of a random browser id kept in the signed
//!   [`XSRF_COOKIE`]. Another site can neither read the token nor compute
//!   it, and a token from one session is useless in another.
//!   [`XsrfBinding`] says what a token is bound to; [`XsrfBinding::token`]
//!   and [`XsrfBinding::verify`] make and check it.
//!
//! Requests authenticated by an `Authorization` token need no XSRF check
//! (a browser never sends that header on its own), as in JupyterHub.

use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, CookieJar, Key, SameSite};
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::db::{Db, DbError, SessionUserRow};
use crate::secret;

/// The login cookie's name (JupyterHub's).
pub const SESSION_COOKIE: &str = "jupyterhub-hub-login";
/// The cookie holding the anonymous browser id that binds XSRF tokens
/// before login (JupyterHub's name).
pub const XSRF_COOKIE: &str = "_xsrf";
/// The form field that carries the XSRF token.
pub const XSRF_FIELD: &str = "_xsrf";
/// The header that carries the XSRF token (JupyterHub's and Tornado's).
pub const XSRF_HEADER: &str = "x-xsrftoken";
/// The path the hub's cookies are scoped to.
pub const COOKIE_PATH: &str = "/hub/";

type HmacSha256 = hmac::Hmac<Sha256>;

/// The keys derived from the cookie secret. Holds secrets: its `Debug`
/// shows nothing.
#[derive(Clone)]
pub struct SessionKeys {
    cookie: Key,
    xsrf: [u8; 32],
    /// Whether cookies get `Secure` (the public URL is https).
    secure: bool,
    /// Session lifetime in seconds.
    max_age: i64,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys")
            .field("secure", &self.secure)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

/// HMAC-SHA256(`key`, `label`): one 32-byte key per purpose from the
/// cookie secret (HKDF's expand step with a single block).
fn derive(secret: &[u8], label: &str) -> [u8; 32] {
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

impl SessionKeys {
    /// Keys from the cookie secret. `secure` sets the cookies' `Secure`
    /// flag; `max_age_secs` is how long a login lasts.
    pub fn new(cookie_secret: &[u8], secure: bool, max_age_secs: i64) -> Self {
        let mut master = [0u8; 64];
        master[..32].copy_from_slice(&derive(cookie_secret, "jhub cookie signing v1"));
        master[32..].copy_from_slice(&derive(cookie_secret, "jhub cookie encryption v1"));
        Self {
            cookie: Key::from(&master),
            xsrf: derive(cookie_secret, "jhub xsrf v1"),
            secure,
            max_age: max_age_secs.max(1),
        }
    }

    /// How long a login lasts, in seconds.
    pub fn max_age(&self) -> i64 {
        self.max_age
    }

    /// The verified value of the signed cookie `name` in `headers`, if
    /// present and signed with these keys.
    pub fn read_signed(&self, headers: &HeaderMap, name: &str) -> Option<String> {
        let mut jar = CookieJar::new();
        for value in headers.get_all(header::COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            for c in Cookie::split_parse(text).flatten() {
                if c.name() == name {
                    jar.add_original(c.into_owned());
                }
            }
        }
        let verified = jar.signed(&self.cookie).get(name)?;
        // The signature covers the value only, so the value starts with
        // the cookie's name: a value signed for one cookie is refused in
        // another.
        verified
            .value()
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('|'))
            .map(str::to_owned)
    }

    /// A `Set-Cookie` value for the signed cookie `name` = `value`, with
    /// the hub's attributes; `max_age` None makes a browser-session
    /// cookie.
    pub fn set_signed(&self, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
        let mut jar = CookieJar::new();
        let mut c = Cookie::new(name.to_owned(), format!("{name}|{value}"));
        self.attributes(&mut c);
        if let Some(secs) = max_age {
            c.set_max_age(cookie::time::Duration::seconds(secs));
        }
        jar.signed_mut(&self.cookie).add(c);
        let signed = jar.get(name).map(|c| c.to_string());
        header_value(&signed.unwrap_or_default())
    }

    /// A `Set-Cookie` value that deletes the cookie `name`.
    pub fn clear(&self, name: &str) -> HeaderValue {
        let mut c = Cookie::new(name.to_owned(), "");
        self.attributes(&mut c);
        c.make_removal();
        header_value(&c.to_string())
    }

    fn attributes(&self, c: &mut Cookie<'static>) {
        c.set_path(COOKIE_PATH);
        c.set_http_only(true);
        c.set_same_site(SameSite::Lax);
        c.set_secure(self.secure);
    }

    fn xsrf_mac(&self, binding: &XsrfBinding<'_>) -> HmacSha256 {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.xsrf)
            .expect("HMAC accepts keys of any length");
        let (kind, id) = match binding {
            XsrfBinding::Session(id) => ("session", id),
            XsrfBinding::Browser(id) => ("browser", id),
        };
        mac.update(kind.as_bytes());
        mac.update(b"\0");
        mac.update(id.as_bytes());
        mac
    }
}

fn header_value(text: &str) -> HeaderValue {
    // Cookie values here are hex, base64 and fixed attribute text.
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// What an XSRF token is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XsrfBinding<'a> {
    /// A logged-in session (its raw id).
    Session(&'a str),
    /// An anonymous browser (the id in [`XSRF_COOKIE`]).
    Browser(&'a str),
}

impl XsrfBinding<'_> {
    /// The token forms must carry.
    pub fn token(&self, keys: &SessionKeys) -> String {
        secret::hex(&keys.xsrf_mac(self).finalize().into_bytes())
    }

    /// Whether `given` is the token for this binding (constant-time).
    pub fn verify(&self, keys: &SessionKeys, given: &str) -> bool {
        let Some(bytes) = decode_hex(given) else {
            return false;
        };
        keys.xsrf_mac(self).verify_slice(&bytes).is_ok()
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// The XSRF token a request carries in its `X-XSRFToken` header.
pub fn xsrf_from_headers(headers: &HeaderMap) -> Option<&str> {
    headers.get(XSRF_HEADER).and_then(|v| v.to_str().ok())
}

/// The stored form of a session id: SHA-256, hex.
pub fn hash_id(id: &str) -> String {
    secret::hex(&Sha256::digest(id.as_bytes()))
}

/// A new random id (sessions, browsers): 32 bytes from the OS, hex.
pub fn new_id() -> Result<String, secret::SecretError> {
    secret::random_hex(32)
}

/// A session found from a request's login cookie.
#[derive(Debug, Clone)]
pub struct FoundSession {
    /// The raw session id (from the verified cookie).
    pub id: String,
    /// Its user.
    pub user: SessionUserRow,
}

/// The unexpired session behind the login cookie in `headers`, if any.
pub async fn find(
    keys: &SessionKeys,
    db: &Db,
    headers: &HeaderMap,
) -> Result<Option<FoundSession>, DbError> {
    let Some(id) = keys.read_signed(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let user = db.session_user(&hash_id(&id), &crate::db::now()).await?;
    Ok(user.map(|user| FoundSession { id, user }))
}

/// Starts a session for user `user_id`: stores it, and returns the raw
/// id and the `Set-Cookie` value for it.
pub async fn start(
    keys: &SessionKeys,
    db: &Db,
    user_id: i64,
) -> Result<(String, HeaderValue), StartError> {
    let id = new_id().map_err(|e| StartError::Random(e.to_string()))?;
    let now = time::OffsetDateTime::now_utc();
    let expires = now + time::Duration::seconds(keys.max_age);
    db.insert_session(
        &hash_id(&id),
        user_id,
        &crate::db::timestamp(now),
        &crate::db::timestamp(expires),
    )
    .await?;
    let cookie = keys.set_signed(SESSION_COOKIE, &id, Some(keys.max_age));
    Ok((id, cookie))
}

/// Why a session could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The OS random source failed.
    #[error("no random bytes from the OS: {0}")]
    Random(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &[u8]) -> SessionKeys {
        SessionKeys::new(secret, false, 3600)
    }

    fn request_with(set_cookie: &HeaderValue) -> HeaderMap {
        // A browser sends back only `name=value`.
        let pair = set_cookie
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&pair).unwrap());
        h
    }

    #[test]
    fn signed_cookie_round_trip() {
        let k = keys(&[7; 32]);
        let set = k.set_signed(SESSION_COOKIE, "abc123", Some(60));
        let text = set.to_str().unwrap();
        assert!(text.starts_with("jupyterhub-hub-login="), "{text}");
        for attr in ["HttpOnly", "SameSite=Lax", "Path=/hub/", "Max-Age=60"] {
            assert!(text.contains(attr), "{attr} missing: {text}");
        }
        assert!(!text.contains("Secure"), "{text}");
        assert!(
            !text.starts_with("jupyterhub-hub-login=abc123"),
            "the value must carry a signature: {text}"
        );
        let h = request_with(&set);
        assert_eq!(k.read_signed(&h, SESSION_COOKIE).as_deref(), Some("abc123"));
        // another secret (a rotated one) does not accept it
        assert_eq!(keys(&[8; 32]).read_signed(&h, SESSION_COOKIE), None);
        // nor does another cookie name (the name is in the signed text)
        let renamed = HeaderValue::from_str(
            &h[header::COOKIE]
                .to_str()
                .unwrap()
                .replace(SESSION_COOKIE, XSRF_COOKIE),
        )
        .unwrap();
        let mut h2 = HeaderMap::new();
        h2.insert(header::COOKIE, renamed);
        assert_eq!(k.read_signed(&h2, XSRF_COOKIE), None);
    }

    #[test]
    fn tampered_cookie_is_refused() {
        let k = keys(&[7; 32]);
        let set = k.set_signed(SESSION_COOKIE, "abc123", None);
        let pair = set.to_str().unwrap().split(';').next().unwrap();
        let forged = pair.replace("abc123", "abc124");
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&forged).unwrap());
        assert_eq!(k.read_signed(&h, SESSION_COOKIE), None);
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("jupyterhub-hub-login=abc123"),
        );
        assert_eq!(k.read_signed(&h, SESSION_COOKIE), None);
    }

    #[test]
    fn secure_flag_and_removal() {
        let k = SessionKeys::new(&[1; 16], true, 10);
        let set = k.set_signed(SESSION_COOKIE, "x", None);
        assert!(set.to_str().unwrap().contains("Secure"));
        let clear = k.clear(SESSION_COOKIE);
        let text = clear.to_str().unwrap();
        assert!(
            text.contains("Max-Age=0") && text.contains("Path=/hub/"),
            "{text}"
        );
    }

    #[test]
    fn xsrf_tokens_are_bound() {
        let k = keys(&[7; 32]);
        let s = XsrfBinding::Session("s1");
        let t = s.token(&k);
        assert_eq!(t.len(), 64);
        assert!(s.verify(&k, &t));
        assert!(!XsrfBinding::Session("s2").verify(&k, &t));
        assert!(!XsrfBinding::Browser("s1").verify(&k, &t));
        assert!(!s.verify(&keys(&[8; 32]), &t));
        assert!(!s.verify(&k, ""));
        assert!(!s.verify(&k, &t[..63]));
        assert!(!s.verify(
            &k,
            &t.to_uppercase().replace(|c: char| c.is_ascii_digit(), "g")
        ));
        let mut flipped = t.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        assert!(!s.verify(&k, std::str::from_utf8(&flipped).unwrap()));
    }

    #[test]
    fn ids_and_hashes() {
        let a = new_id().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, new_id().unwrap());
        assert_eq!(hash_id("abc").len(), 64);
        assert_ne!(hash_id(&a), a);
    }
}
