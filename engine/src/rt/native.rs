//! The native runtime: tokio.

use std::future::Future;

use web_time::Instant;

/// `Send`: tokio moves tasks between its threads.
pub trait MaybeSend: Send {}
impl<T: Send + ?Sized> MaybeSend for T {}

/// Runs `future` on the current tokio runtime.
pub fn spawn(future: impl Future<Output = ()> + Send + 'static) {
    tokio::spawn(future);
}

/// Resolves at `deadline`.
pub async fn sleep_until(deadline: Instant) {
    tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await;
}
