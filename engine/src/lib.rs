//! Rotunda's call engine: one participant's call with a room, without a window.
//!
//! It stands between the wire protocol (`rotunda-proto`, below it) and the 3D room (the
//! `rotunda` crate, above it): it imports nothing of the room and links no Bevy.
//!
//! - [`call`]: the call as a sans-IO state machine ([`Call`]): commands and network events in,
//!   actions and events out, `now` passed in; tested on a simulated clock.
//! - [`transport`]: the session with the relay over WebTransport (quinn natively, the browser's
//!   own in a page or worker).
//! - [`codec`]: one codec interface shaped like WebCodecs (push input, poll output), implemented
//!   by openh264 and libopus natively and by WebCodecs in the browser.
//! - [`media`]: pictures and their sources (the synthetic pattern and tone), reordering.
//! - [`audio`]: jitter buffers, concealment, the voices, the spatial mixer, resampling.
//! - [`handle`]: the application's handle on a running call ([`Engine`]): bounded channels and
//!   mailboxes. Natively the call runs as a tokio task; in the browser in a dedicated worker
//!   (`worker`), whose messages fill the same handle.
//! - `driver`: the one loop that runs a [`Call`] on either platform; [`rt`]: the little it needs
//!   from each platform's runtime.
//!
//! Natively, `handle::native::run_bot` is a participant without a window (`rotunda bot`).

pub mod audio;
pub mod call;
pub mod codec;
pub mod driver;
pub mod error;
pub mod handle;
#[cfg(web)]
pub mod js;
#[cfg(native)]
pub mod load;
pub mod mailbox;
pub mod media;
pub mod rt;
pub mod session;
mod sync;
pub mod transport;
pub mod worker;

pub use call::{
    BotReport, Call, CallConfig, CallEvent, Command, Decoded, E2eeCost, JoinOptions, LivePeer,
    LiveStats, PanelView, PeerReport, SCREEN_INDEX, Security, VideoSpec,
};
pub use driver::{Outputs, Parts, run};
pub use error::{Error, Result};
pub use handle::{Engine, Gone};
