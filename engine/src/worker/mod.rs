//! The engine in a dedicated worker of the page: its own wasm instance, with WebTransport,
//! WebCodecs, the jitter buffers and the mixer, so the call never waits for the page to draw.
//!
//! The page starts it through `handle::web::spawn` and talks to it in [`protocol`] messages;
//! the camera's frames, the microphone and the speakers reach it directly (a transferred
//! `ReadableStream` and two `MessagePort`s to the page's audio worklets), not through the page's
//! thread.

pub mod protocol;

#[cfg(web)]
mod devices;
#[cfg(web)]
mod entry;

#[cfg(web)]
pub use entry::start;
