//! The client's decoder of the relay's control stream ([`FromRelay`] frames), on arbitrary bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rotunda_proto::FromRelay;

fuzz_target!(|data: &[u8]| {
    rotunda_proto_fuzz::check_stream::<FromRelay>(data);
});
