//! Body types for both directions. Bodies are streamed frame by frame and
//! never collected; the wrappers only add activity bookkeeping:
//! - [`RequestBody`]: the client's body on its way to the target; every
//!   data frame counts as activity on the route (as the reference counts
//!   request `data` events).
//! - [`ResponseBody`]: what the client receives, either the target's body
//!   (activity recorded when it has been sent in full, for statuses below
//!   300) or a complete in-memory body for API answers and error pages.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::routes::Route;

/// A request body sent to a target.
#[derive(Debug)]
pub struct RequestBody {
    inner: Option<Incoming>,
    activity: Option<Arc<Route>>,
}

impl RequestBody {
    /// Forwards `inner`, touching `activity` on each data frame.
    pub fn stream(inner: Incoming, activity: Option<Arc<Route>>) -> Self {
        Self {
            inner: Some(inner),
            activity,
        }
    }

    /// No body (error-page requests, websocket handshakes).
    pub fn empty() -> Self {
        Self {
            inner: None,
            activity: None,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(route)) = (&polled, &this.activity) {
            if frame.is_data() {
                route.touch();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(b) => b.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}

/// A response body sent to a client.
#[derive(Debug)]
pub enum ResponseBody {
    /// A target's body, streamed; the route is touched when it ends.
    Upstream {
        /// The target's body.
        inner: Incoming,
        /// The route to touch at the end (successful responses only).
        on_end: Option<Arc<Route>>,
    },
    /// A complete body (taken on the first poll).
    Full(Option<Bytes>),
}

impl ResponseBody {
    /// A complete body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let b = bytes.into();
        ResponseBody::Full(if b.is_empty() { None } else { Some(b) })
    }

    /// An empty body.
    pub fn empty() -> Self {
        ResponseBody::Full(None)
    }

    /// A target's body; `on_end` is touched when it has been read in full
    /// (at once if it is already known to be empty).
    pub fn upstream(inner: Incoming, on_end: Option<Arc<Route>>) -> Self {
        if inner.is_end_stream() {
            if let Some(route) = &on_end {
                route.touch();
            }
            return ResponseBody::Upstream {
                inner,
                on_end: None,
            };
        }
        ResponseBody::Upstream { inner, on_end }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ResponseBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ResponseBody::Upstream { inner, on_end } => {
                let polled = Pin::new(&mut *inner).poll_frame(cx);
                // The server may stop polling once `is_end_stream` is true,
                // so check after each frame as well as at the end.
                let done = match &polled {
                    Poll::Ready(None) => true,
                    Poll::Ready(Some(Ok(_))) => inner.is_end_stream(),
                    _ => false,
                };
                if done {
                    if let Some(route) = on_end.take() {
                        route.touch();
                    }
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(b) => b.is_none(),
            ResponseBody::Upstream { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ResponseBody::Upstream { inner, .. } => inner.size_hint(),
        }
    }
}
