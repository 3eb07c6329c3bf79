//! The relay's decoder of a client's control stream ([`ToRelay`] frames), on arbitrary bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rotunda_proto::ToRelay;

fuzz_target!(|data: &[u8]| {
    rotunda_proto_fuzz::check_stream::<ToRelay>(data);
});
