//! A single-threaded broadcast signal: tasks wait for the next `notify`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// Waiters register a waker; `notify` bumps the generation and wakes all.
/// The waker list is bounded by the number of live waiting tasks.
#[derive(Debug, Default)]
pub struct Signal {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Signal {
    pub fn notify(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// A future resolving at the next `notify` after this call.
    pub fn wait(self: &Rc<Self>) -> SignalWait {
        SignalWait {
            signal: self.clone(),
            generation: self.generation.get(),
        }
    }
}

/// Resolves once the signal's generation moved past the captured one.
#[derive(Debug)]
pub struct SignalWait {
    signal: Rc<Signal>,
    generation: u64,
}

impl Future for SignalWait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.generation.get() != self.generation {
            return Poll::Ready(());
        }
        let mut wakers = self.signal.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
            wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
