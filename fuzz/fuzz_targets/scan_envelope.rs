//! Fuzzes the envelope scanner: for any bytes it must not panic, must agree with serde_json on
//! every body serde_json reads, and must otherwise answer as its documented fast path or its
//! lenient reading (the promise is written once, in `agreement`, shared with the property test).
//!
//! The scanner's source file is compiled here as it is, rather than exported by the gateway's
//! library: it depends on nothing else in the gateway, and the fuzz build stays seconds long
//! instead of rebuilding the whole gateway with sanitizers.

#![no_main]

#[path = "../../src/forward/scan.rs"]
mod scan;

#[path = "../../src/forward/scan/agreement.rs"]
mod agreement;

use scan::{Fields, envelope};

libfuzzer_sys::fuzz_target!(|body: &[u8]| agreement::check(body));
