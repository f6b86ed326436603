//! Joining the I/O futures of one task: all are polled together, so their
//! operations reach the ring at once and run concurrently on the device.

use std::future::{poll_fn, Future};
use std::task::Poll;

/// Runs `futs` concurrently; their outputs, in order.
pub(crate) async fn join_all<F: Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut slots: Vec<_> = futs.into_iter().map(|f| (Box::pin(f), None)).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (f, r) in slots.iter_mut() {
            if r.is_none() {
                match f.as_mut().poll(cx) {
                    Poll::Ready(x) => *r = Some(x),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    slots.into_iter().filter_map(|(_, r)| r).collect()
}
