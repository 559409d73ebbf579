//! A cookie-keeping HTTP client that drives the hub's pages as a browser
//! would (without JavaScript): it keeps the cookies the hub sets, reads
//! the `_xsrf` token out of forms, and never follows redirects by itself,
//! so tests see each `Location`.
//!
//! The jar is deliberately simple: one host, every cookie sent on every
//! request (the hub scopes its cookies to `/hub/`, and tests only talk to
//! `/hub/...` except where they check the redirect of `/`), `Max-Age=0`
//! deletes.

use std::collections::BTreeMap;
use std::time::Duration;

/// One answer: status, the headers tests look at, and the body.
#[derive(Debug, Clone)]
pub struct Page {
    /// The status code.
    pub status: u16,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// Every `Set-Cookie` header, as sent.
    pub set_cookies: Vec<String>,
    /// The body, as text.
    pub body: String,
}

impl Page {
    /// The `Set-Cookie` header for cookie `name`, if the answer sets it.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies
            .iter()
            .map(String::as_str)
            .find(|c| c.starts_with(&format!("{name}=")))
    }
}

/// A browser on one hub.
#[derive(Debug, Clone)]
pub struct Browser {
    base: String,
    agent: ureq::Agent,
    /// The cookies held, by name.
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    /// A browser with no cookies, for the hub at `base`
    /// (`http://127.0.0.1:PORT`).
    pub fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            agent,
            cookies: BTreeMap::new(),
        }
    }

    /// Sends `method path` with the held cookies, `headers` and `body`,
    /// and keeps the cookies the answer sets.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Page {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("Cookie", jar.join("; "));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(body.unwrap_or_default()).expect("request");
        let mut resp = self
            .agent
            .run(req)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let set_cookies: Vec<String> = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect();
        for c in &set_cookies {
            self.keep(c);
        }
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        Page {
            status,
            location,
            set_cookies,
            body,
        }
    }

    fn keep(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
            return;
        };
        let removal = parts.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
        if removal {
            self.cookies.remove(name);
        } else {
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
    }

    /// `GET path`.
    pub fn get(&mut self, path: &str) -> Page {
        self.request("GET", path, &[], None)
    }

    /// `POST path` with a form body of `fields` (url-encoded here).
    pub fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(encode_form(fields).into_bytes()),
        )
    }

    /// The `_xsrf` token in the first form of the page at `path`.
    pub fn xsrf(&mut self, path: &str) -> String {
        let page = self.get(path);
        xsrf_in(&page.body)
            .unwrap_or_else(|| panic!("no _xsrf field in {path} ({}): {}", page.status, page.body))
    }

    /// Logs in through the login form (`GET /hub/login`, then `POST` it
    /// with `username`, `password` and the form's `_xsrf`); the answer to
    /// the `POST`.
    pub fn login(&mut self, username: &str, password: &str) -> Page {
        let xsrf = self.xsrf("/hub/login");
        self.post_form(
            "/hub/login",
            &[
                ("username", username),
                ("password", password),
                ("_xsrf", &xsrf),
            ],
        )
    }
}

/// The value of the first `name="_xsrf"` input in `html`.
pub fn xsrf_in(html: &str) -> Option<String> {
    let at = html.find("name=\"_xsrf\"")?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let value = tag.split("value=\"").nth(1)?;
    Some(value.split('"').next()?.to_owned())
}

/// `fields` as an `application/x-www-form-urlencoded` body.
pub fn encode_form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_and_xsrf() {
        assert_eq!(
            encode_form(&[("a b", "c&d=é"), ("x", "")]),
            "a+b=c%26d%3D%C3%A9&x="
        );
        let html =
            r#"<form><input type="hidden" name="_xsrf" value="abc123"><input name="u"></form>"#;
        assert_eq!(xsrf_in(html).as_deref(), Some("abc123"));
        assert_eq!(xsrf_in("<p>none</p>"), None);
    }
}
