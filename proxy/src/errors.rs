//! Error answers for proxied requests, chosen as the reference chooses:
//! 1. with `--error-target`: `GET {target}/{code}?url={request url}`; its
//!    body, `Content-Type` and `Content-Encoding` are relayed with *our*
//!    status code; if that request fails, the plain default below;
//! 2. with `--error-path DIR`: `DIR/{code}.html`, else `DIR/error.html`
//!    (`Content-Type: text/html`), else the plain default;
//! 3. otherwise the built-in HTML pages for 404 and 503 and a generic one
//!    for other codes (`Content-Type: text/html`).
//!
//! The plain default is the status's reason phrase as the body, with no
//! `Content-Type`. Codes used: 404 (no route), 503 (target unreachable,
//! failed or timed out), 500 (undecodable path or unusable target).

use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, header};

use crate::body::{RequestBody, ResponseBody};
use crate::state::State;

/// Built-in page for 404.
const PAGE_404: &str = "<!doctype html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
<title>404: Not Found</title>\n</head>\n<body>\n<h1>404: Not Found</h1>\n\
<p>Nothing is served at this address.</p>\n<hr>\n<p>jhub-proxy</p>\n</body>\n</html>\n";

/// Built-in page for 503.
const PAGE_503: &str = "<!doctype html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
<title>503: Proxy Target Missing</title>\n</head>\n<body>\n<h1>503: Proxy Target Missing</h1>\n\
<p>The server behind this address is not answering.</p>\n<hr>\n<p>jhub-proxy</p>\n</body>\n</html>\n";

/// Built-in page for any other code.
const PAGE_OTHER: &str = "<!doctype html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
<title>Proxy Error</title>\n</head>\n<body>\n<h1>Proxy Error</h1>\n<hr>\n\
<p>jhub-proxy</p>\n</body>\n</html>\n";

/// How long the error target may take before the plain default is used.
const ERROR_TARGET_TIMEOUT: Duration = Duration::from_secs(30);

/// The plain default: the reason phrase, no content type.
pub fn plain(code: StatusCode) -> Response<ResponseBody> {
    let mut res = Response::new(ResponseBody::full(code.canonical_reason().unwrap_or("")));
    *res.status_mut() = code;
    res
}

fn html(code: StatusCode, body: impl Into<bytes::Bytes>) -> Response<ResponseBody> {
    let mut res = Response::new(ResponseBody::full(body));
    *res.status_mut() = code;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    res
}

/// The error target URL for `code` and the request URL `url`.
fn error_target_url(base: &str, code: StatusCode, url: &str) -> Option<url::Url> {
    let mut u = url::Url::parse(base).ok()?;
    let path = format!("{}{}", u.path(), code.as_u16());
    u.set_path(&path);
    // URLSearchParams.set: replace the first `url`, drop the others, or
    // append; the whole query is re-serialized form-encoded.
    let mut pairs: Vec<(String, String)> = u.query_pairs().into_owned().collect();
    match pairs.iter().position(|(k, _)| k == "url") {
        Some(i) => {
            pairs[i].1 = url.to_owned();
            let mut seen = false;
            pairs.retain(|(k, _)| {
                if k != "url" {
                    return true;
                }
                let keep = !seen;
                seen = true;
                keep
            });
        }
        None => pairs.push(("url".to_owned(), url.to_owned())),
    }
    u.query_pairs_mut().clear().extend_pairs(pairs);
    Some(u)
}

/// The answer for a failed web request; `url` is the request URL as the
/// proxy saw it when it failed.
pub async fn respond(state: &State, code: StatusCode, url: &str) -> Response<ResponseBody> {
    state.metrics.requests_proxy.inc(code.as_u16());
    if let Some(base) = &state.config.error_target {
        return from_error_target(state, base, code, url).await;
    }
    match &state.config.error_path {
        Some(dir) => {
            for name in [format!("{}.html", code.as_u16()), "error.html".to_owned()] {
                let file = dir.join(&name);
                match tokio::fs::read(&file).await {
                    Ok(body) => return html(code, body),
                    Err(e) => tracing::debug!(file = %file.display(), error = %e, "no error page"),
                }
            }
            tracing::error!(dir = %dir.display(), "no error page for {}", code.as_u16());
            plain(code)
        }
        None => html(
            code,
            match code.as_u16() {
                404 => PAGE_404,
                503 => PAGE_503,
                _ => PAGE_OTHER,
            },
        ),
    }
}

async fn from_error_target(
    state: &State,
    base: &str,
    code: StatusCode,
    url: &str,
) -> Response<ResponseBody> {
    let Some(target) = error_target_url(base, code, url) else {
        return plain(code);
    };
    tracing::debug!(url = %target, "requesting custom error page");
    let req = match Request::get(target.as_str()).body(RequestBody::empty()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "Failed to get custom error page");
            return plain(code);
        }
    };
    let upstream = match tokio::time::timeout(ERROR_TARGET_TIMEOUT, state.client.request(req)).await
    {
        Ok(Ok(res)) => res,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "Failed to get custom error page");
            return plain(code);
        }
        Err(_) => {
            tracing::error!("Failed to get custom error page: timed out");
            return plain(code);
        }
    };
    let (parts, body) = upstream.into_parts();
    let mut res = Response::new(ResponseBody::upstream(body, None));
    *res.status_mut() = code;
    for name in [header::CONTENT_TYPE, header::CONTENT_ENCODING] {
        if let Some(v) = parts.headers.get(&name) {
            res.headers_mut().insert(name, v.clone());
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_target_urls() {
        let u = error_target_url(
            "http://127.0.0.1:8081/hub/error/",
            StatusCode::NOT_FOUND,
            "/user/a b/x?y=1",
        )
        .expect("url");
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:8081/hub/error/404?url=%2Fuser%2Fa+b%2Fx%3Fy%3D1"
        );
        let u = error_target_url(
            "http://h/e/?k=v&url=old&url=x",
            StatusCode::SERVICE_UNAVAILABLE,
            "/p",
        )
        .expect("url");
        assert_eq!(u.as_str(), "http://h/e/503?k=v&url=%2Fp");
    }

    #[test]
    fn plain_default_has_reason_and_no_type() {
        let r = plain(StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.status(), 503);
        assert!(r.headers().get(header::CONTENT_TYPE).is_none());
    }
}
