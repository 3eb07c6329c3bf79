//! Locking state shared between the engine's threads and the application.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`. A thread that panicked while holding it left data that is still whole for
/// every use here (counters, queues, mailboxes), so the lock is taken anyway rather than
/// spreading the panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
