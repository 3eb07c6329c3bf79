//! One name for each platform the engine runs on, so that code says `#[cfg(web)]` rather than
//! spelling out target triples.

fn main() {
    cfg_aliases::cfg_aliases! {
        // The browser: wasm32 with no operating system (wasm-bindgen, web-sys).
        web: { all(target_arch = "wasm32", target_os = "unknown") },
        // Everything else: a desktop with threads, sockets and devices.
        native: { not(web) },
    }
}
