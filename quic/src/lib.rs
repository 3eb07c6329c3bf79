//! What the Rotunda relay and native clients share over WebTransport (`wtransport` on quinn):
//! media frames on unidirectional streams, one frame per stream ([`stream`]).
//!
//! It sits below both the relay (`rotunda-server`) and the call engine (`rotunda-engine`), so
//! neither depends on the other for it.

pub mod stream;
