//! The browser's runtime: the event loop of the page or worker the code runs in.

use std::future::Future;

use web_time::Instant;

/// Nothing: a page or worker is one thread, and its JavaScript objects may not leave it.
pub trait MaybeSend {}
impl<T: ?Sized> MaybeSend for T {}

/// Runs `future` on this thread's event loop.
pub fn spawn(future: impl Future<Output = ()> + 'static) {
    wasm_bindgen_futures::spawn_local(future);
}

/// Resolves at `deadline` (a `setTimeout`, so no sooner than the browser's timer allows).
pub async fn sleep_until(deadline: Instant) {
    let ms = deadline
        .saturating_duration_since(Instant::now())
        .as_millis()
        .min(i32::MAX as u128) as i32;
    crate::js::sleep_ms(ms).await;
}
