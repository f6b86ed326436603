//! A lock for one shard's tasks that is handed out strictly in the order
//! it was asked for.
//!
//! glommio's `Semaphore` does not promise that: a waiter that is polled
//! while a unit is free takes it, ahead of older waiters (a task that
//! releases the lock and asks again at once overtakes the one it just
//! woke). The partition-log open lock needs the order: appends to one
//! partition that wait for its log to open must reach it in the order they
//! arrived, or an idempotent producer's next batch looks like a sequence
//! gap (found by the crash test, under a broker killed while recovering).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};

#[derive(Default)]
pub struct FifoLock {
    /// Ticket the next caller gets.
    next: Cell<u64>,
    /// Ticket that holds the lock (or may take it); `next == serving`
    /// when nobody holds or waits for it.
    serving: Cell<u64>,
    waiters: RefCell<VecDeque<(u64, Waker)>>,
    /// Tickets whose callers gave up waiting (their future was dropped):
    /// skipped when their turn comes.
    abandoned: RefCell<Vec<u64>>,
}

/// Holds the lock until dropped.
pub struct FifoGuard<'a> {
    lock: &'a FifoLock,
}

/// A ticket while its caller waits; dropping it gives up the place.
struct Waiting<'a> {
    lock: &'a FifoLock,
    ticket: u64,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let l = self.lock;
        l.waiters.borrow_mut().retain(|(t, _)| *t != self.ticket);
        if l.serving.get() == self.ticket {
            // Our turn had come: pass it on.
            l.advance();
        } else {
            l.abandoned.borrow_mut().push(self.ticket);
        }
    }
}

impl FifoLock {
    /// Nobody holds the lock and nobody waits for it.
    pub fn is_idle(&self) -> bool {
        self.next.get() == self.serving.get()
    }

    /// Waits for the lock; callers get it in the order they called.
    pub async fn lock(&self) -> FifoGuard<'_> {
        let ticket = self.next.get();
        self.next.set(ticket + 1);
        let mut waiting = Waiting {
            lock: self,
            ticket,
            done: false,
        };
        poll_fn(|cx| {
            if self.serving.get() == ticket {
                return Poll::Ready(());
            }
            let mut w = self.waiters.borrow_mut();
            match w.iter_mut().find(|(t, _)| *t == ticket) {
                Some(slot) => slot.1 = cx.waker().clone(),
                None => w.push_back((ticket, cx.waker().clone())),
            }
            Poll::Pending
        })
        .await;
        waiting.done = true;
        FifoGuard { lock: self }
    }

    /// Hands the lock to the next ticket still wanted, waking its caller.
    fn advance(&self) {
        let mut next = self.serving.get() + 1;
        {
            let mut gone = self.abandoned.borrow_mut();
            while let Some(i) = gone.iter().position(|t| *t == next) {
                gone.swap_remove(i);
                next += 1;
            }
        }
        self.serving.set(next);
        let mut w = self.waiters.borrow_mut();
        if let Some(i) = w.iter().position(|(t, _)| *t == next) {
            if let Some((_, waker)) = w.remove(i) {
                waker.wake();
            }
        }
    }
}

impl Drop for FifoGuard<'_> {
    fn drop(&mut self) {
        self.lock.advance();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn the_lock_goes_in_the_order_it_was_asked_for() {
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(256 << 10)
            .make()
            .unwrap();
        ex.run(async {
            let lock = Rc::new(FifoLock::default());
            let order = Rc::new(RefCell::new(Vec::new()));
            let first = lock.lock().await;
            let mut tasks = Vec::new();
            for i in 0..5 {
                let (lock, order) = (lock.clone(), order.clone());
                tasks.push(glommio::spawn_local(async move {
                    let _g = lock.lock().await;
                    order.borrow_mut().push(i);
                    glommio::yield_if_needed().await;
                }));
            }
            glommio::executor().yield_task_queue_now().await;
            assert!(!lock.is_idle());
            // Release, then ask again at once: the woken waiter goes first,
            // the newcomer last (a glommio Semaphore would let it through).
            drop(first);
            let again = lock.lock().await;
            order.borrow_mut().push(99);
            drop(again);
            for t in tasks {
                t.await;
            }
            assert_eq!(*order.borrow(), vec![0, 1, 2, 3, 4, 99]);
            assert!(lock.is_idle());
        });
    }

    #[test]
    fn a_caller_that_gives_up_does_not_block_the_rest() {
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(256 << 10)
            .make()
            .unwrap();
        ex.run(async {
            let lock = Rc::new(FifoLock::default());
            let held = lock.lock().await;
            // Two waiters; the first is cancelled while it waits.
            let l1 = lock.clone();
            let quitter = glommio::spawn_local(async move {
                let _g = l1.lock().await;
            });
            let l2 = lock.clone();
            let stayer = glommio::spawn_local(async move {
                let _g = l2.lock().await;
                7
            });
            glommio::executor().yield_task_queue_now().await;
            drop(quitter);
            drop(held);
            assert_eq!(stayer.await, 7);
            assert!(lock.is_idle());
            // Cancelled right when its turn came: the turn passes on.
            let held = lock.lock().await;
            let l1 = lock.clone();
            let quitter = glommio::spawn_local(async move {
                let _g = l1.lock().await;
            });
            glommio::executor().yield_task_queue_now().await;
            drop(held);
            drop(quitter);
            let _g = lock.lock().await;
        });
    }
}
