//! The timer behind each client connection's keep-alive timeout.
//!
//! hyper's HTTP/1 server arms a fresh sleep each time it starts waiting
//! for a request head and drops it as soon as the head has arrived, so on
//! a busy keep-alive connection a tokio timer entry was made, put into the
//! timer wheel and taken out again for every request. Here each connection
//! has one tokio sleep of its own instead, and the sleeps hyper asks for
//! are only deadlines:
//! - polling a deadline that has passed is ready;
//! - otherwise the connection's sleep is armed for that deadline unless it
//!   is already armed for an earlier moment, in which case it wakes the
//!   connection early, the deadline is checked again and the sleep is
//!   re-armed for it.
//!
//! Deadlines on one connection only move forward (now + the timeout, at
//! each new request), so the sleep is re-armed about once per timeout on
//! a connection in use, not once per request, and the timeout fires when
//! it did before: at the latest deadline asked for.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};

/// One connection's sleep, armed lazily.
type Shared = Arc<Mutex<Option<Pin<Box<tokio::time::Sleep>>>>>;

/// A timer for one connection (see the module notes).
#[derive(Clone, Default)]
pub struct ConnTimer {
    sleep: Shared,
}

impl ConnTimer {
    /// A timer with nothing armed yet.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Timer for ConnTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(Deadline {
            deadline,
            sleep: Arc::clone(&self.sleep),
        })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<Deadline>() {
            Some(d) => d.get_mut().deadline = new_deadline,
            None => *sleep = self.sleep_until(new_deadline),
        }
    }

    fn now(&self) -> Instant {
        // tokio's clock, which tests can pause; the system's otherwise.
        tokio::time::Instant::now().into_std()
    }
}

/// A moment hyper waits for, woken by the connection's sleep.
struct Deadline {
    deadline: Instant,
    sleep: Shared,
}

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = tokio::time::Instant::from_std(self.deadline);
        if tokio::time::Instant::now() >= deadline {
            return Poll::Ready(());
        }
        // Nothing else holds the lock for longer than this poll, and a
        // panic in it cannot leave the slot inconsistent.
        let mut slot = self.sleep.lock().unwrap_or_else(|p| p.into_inner());
        let sleep = slot.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() > deadline || sleep.is_elapsed() {
            sleep.as_mut().reset(deadline);
        }
        if sleep.as_mut().poll(cx).is_ready() {
            // Elapsed in the moment since the clock was read: the deadline
            // itself is due now or very soon; wait for it exactly.
            sleep.as_mut().reset(deadline);
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }
}

impl Sleep for Deadline {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_at_the_latest_deadline() {
        let timer = ConnTimer::new();
        let start = timer.now();
        let mut s = timer.sleep_until(start + Duration::from_secs(5));
        // Armed (polled) once for 5 s, then moved to 8 s before it fires.
        assert!(futures_poll(&mut s).is_pending());
        timer.reset(&mut s, start + Duration::from_secs(8));
        let t0 = tokio::time::Instant::now();
        s.as_mut().await;
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_secs(8) && waited < Duration::from_secs(9),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_sleep_reuses_the_connection_sleep() {
        let timer = ConnTimer::new();
        let mut first = timer.sleep(Duration::from_secs(5));
        assert!(futures_poll(&mut first).is_pending());
        drop(first);
        // As hyper does at the next request: a new, later deadline.
        tokio::time::advance(Duration::from_secs(2)).await;
        let t0 = tokio::time::Instant::now();
        timer.sleep(Duration::from_secs(5)).await;
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_past_deadline_is_ready() {
        let timer = ConnTimer::new();
        let mut s = timer.sleep_until(timer.now());
        assert!(futures_poll(&mut s).is_ready());
    }

    fn futures_poll(s: &mut Pin<Box<dyn Sleep>>) -> Poll<()> {
        let waker = std::task::Waker::noop();
        s.as_mut().poll(&mut Context::from_waker(waker))
    }
}
