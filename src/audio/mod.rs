//! Audio playout: the jitter buffer that feeds the Opus decoder at a steady 20 ms pace.

pub mod jitter;

pub use jitter::{JitterBuffer, Playout};
