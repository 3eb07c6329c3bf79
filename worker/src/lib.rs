//! The call engine in a dedicated worker: the page's `rotunda_engine::handle::web::spawn` starts
//! a worker on `worker.js`, which loads this module; [`start`] then waits for the page's start
//! message and runs the call (`rotunda_engine::worker`). It links no Bevy: the module is the
//! engine alone.

#![cfg(all(target_arch = "wasm32", target_os = "unknown"))]

use wasm_bindgen::prelude::*;

/// Runs when the module loads in the worker.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    let mut logging = tracing_wasm::WASMLayerConfigBuilder::new();
    logging.set_max_level(tracing::Level::WARN);
    tracing_wasm::set_as_global_default_with_config(logging.build());
    rotunda_engine::worker::start();
}
