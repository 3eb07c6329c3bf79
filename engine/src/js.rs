//! Small helpers for JavaScript: timers, promises, plain objects and the console. They work in a
//! page and in a worker alike (nothing here needs `window`); the application's own browser code
//! uses them too.

use std::future::Future;

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::convert::FromWasmAbi;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// The global `setTimeout`, in a page or a worker.
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &js_sys::Function, ms: i32) -> JsValue;
}

/// Runs `future` on this thread's event loop.
pub fn spawn(future: impl Future<Output = ()> + 'static) {
    wasm_bindgen_futures::spawn_local(future);
}

/// Resolves after `ms` milliseconds (a `setTimeout`).
pub async fn sleep_ms(ms: i32) {
    let promise = Promise::new(&mut |resolve, _reject| {
        let _ = set_timeout(&resolve, ms.max(0));
    });
    let _ = JsFuture::from(promise).await;
}

/// Awaits a promise, turning a rejection into its message.
pub async fn wait<T: FromWasmAbi + 'static>(promise: Promise<T>) -> Result<T, String> {
    JsFuture::from(promise).await.map_err(|e| message(&e))
}

/// Waits for `future` at most `ms` milliseconds; `None` when the time ran out.
pub async fn timeout<T>(ms: i32, future: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        biased;
        value = future => Some(value),
        () = sleep_ms(ms) => None,
    }
}

/// Marks a promise whose outcome nobody waits for as handled, so a rejection is not reported as
/// an uncaught error.
pub fn forget<T>(promise: &Promise<T>) {
    thread_local! {
        static IGNORE: Closure<dyn FnMut(JsValue)> = Closure::new(|_| {});
    }
    IGNORE.with(|ignore| {
        let _ = promise.catch(ignore);
    });
}

/// The text of a JS error (or whatever was thrown).
pub fn message(value: &JsValue) -> String {
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        return String::from(error.message());
    }
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}

/// A plain object built from `(key, value)` pairs.
pub fn object(pairs: &[(&str, JsValue)]) -> Object {
    let object = Object::new();
    for (key, value) in pairs {
        let _ = Reflect::set(&object, &JsValue::from_str(key), value);
    }
    object
}

/// `object[key]`, or undefined.
pub fn get(object: &JsValue, key: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Whether the global scope has `name` (a constructor such as `WebTransport`).
pub fn has_global(name: &str) -> bool {
    Reflect::has(&js_sys::global(), &JsValue::from_str(name)).unwrap_or(false)
        && !get(&js_sys::global(), name).is_undefined()
}

/// Logs a line to the console.
pub fn log(line: &str) {
    web_sys::console::log_1(&JsValue::from_str(line));
}

/// Logs an error line to the console.
pub fn log_error(line: &str) {
    web_sys::console::error_1(&JsValue::from_str(line));
}
