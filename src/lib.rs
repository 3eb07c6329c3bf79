//! Rotunda: a real-time meeting place where every participant is a live video panel in a 3D room
//! and every voice comes from where its panel stands.
//!
//! This crate is the client. Its parts, one folder each:
//! - [`net`]: the session with a relay (control, audio datagrams, video streams);
//! - [`media`]: sources (synthetic test pattern and tone; camera and microphone come later) and
//!   codecs (H.264 Constrained Baseline in Annex-B, Opus 48 kHz mono 20 ms);
//! - [`audio`]: the jitter buffer in front of the Opus decoder;
//! - [`bot`]: `rotunda bot`, a participant without a window that publishes the synthetic sources,
//!   decodes everyone else, checks what it decoded and reports statistics.

pub mod audio;
pub mod bot;
pub mod media;
pub mod net;
