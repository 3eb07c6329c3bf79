//! The relay serves the browser client's bundle over HTTP on its TCP port: the real relay on port
//! 0, a temporary web root, plain HTTP/1.1 requests over a `TcpStream`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rotunda_server::{Config, Relay, Running};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest one request may take before the test fails (a bound, never a sleep).
const PATIENCE: Duration = Duration::from_secs(20);

const INDEX: &str = "<!doctype html><title>Rotunda</title>\n";
const SCRIPT: &str = "export default function init() {}\n";
const WASM: &[u8] = b"\0asm\x01\0\0\0";
/// Placed beside the web root: no request may reach it.
const SECRET: &str = "outside the web root\n";

/// A directory of its own under the system temp dir: `site/` is the web root, `Cargo.toml` sits
/// next to it. Removed on drop.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "rotunda-web-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("site")).expect("creates the scratch dir");
        std::fs::write(dir.join("Cargo.toml"), SECRET).expect("writes the secret");
        Self { dir }
    }

    fn site(&self) -> PathBuf {
        self.dir.join("site")
    }

    /// A web root with an index, a script and a wasm module.
    fn built(name: &str) -> Self {
        let scratch = Self::new(name);
        let site = scratch.site();
        std::fs::write(site.join("index.html"), INDEX).expect("writes index.html");
        std::fs::write(site.join("rotunda.js"), SCRIPT).expect("writes the script");
        std::fs::write(site.join("rotunda_bg.wasm"), WASM).expect("writes the wasm");
        scratch
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The real relay on a free loopback port, serving `web_root`.
struct TestRelay {
    relay: Running,
}

impl TestRelay {
    async fn start(web_root: &Path) -> Self {
        let mut config = Config::on(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.web_root = Some(web_root.to_owned());
        let relay = Relay::bind(config).await.expect("relay binds").spawn();
        Self { relay }
    }

    /// `GET path`, with extra request header lines.
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", path, headers).await
    }

    /// One request on a fresh connection (the listener is bound, so it queues until accepted).
    async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let exchange = async {
            let mut stream = TcpStream::connect(self.relay.addr).await.expect("connects");
            let mut request = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
            for (name, value) in headers {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
            request.push_str("Connection: close\r\n\r\n");
            stream
                .write_all(request.as_bytes())
                .await
                .expect("sends the request");
            let mut raw = Vec::new();
            stream
                .read_to_end(&mut raw)
                .await
                .expect("reads the response");
            Response::parse(&raw)
        };
        tokio::time::timeout(PATIENCE, exchange)
            .await
            .expect("the relay answers in time")
    }

    async fn stop(self) {
        self.relay.stop().await;
    }
}

/// An HTTP/1.1 response with a `Content-Length` body (all this server sends).
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn parse(raw: &[u8]) -> Self {
        let split = raw
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .expect("a complete header block");
        let head = std::str::from_utf8(&raw[..split]).expect("headers are text");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("a status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("a status code");
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Self {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("body is text")
    }
}

#[tokio::test]
async fn serves_each_file_with_its_content_type() {
    let scratch = Scratch::built("types");
    let relay = TestRelay::start(&scratch.site()).await;
    for (path, body, content_type) in [
        ("/index.html", INDEX.as_bytes(), "text/html"),
        ("/", INDEX.as_bytes(), "text/html"),
        ("/rotunda.js", SCRIPT.as_bytes(), "text/javascript"),
        ("/rotunda_bg.wasm", WASM, "application/wasm"),
    ] {
        let response = relay.get(path, &[]).await;
        assert_eq!(response.status, 200, "{path}");
        assert_eq!(response.body, body, "{path}");
        assert_eq!(
            response.header("content-type"),
            Some(content_type),
            "{path}"
        );
        assert_eq!(response.header("cache-control"), Some("no-cache"), "{path}");
        assert_eq!(
            response.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        let etag = response.header("etag").expect("an etag");
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    }
    relay.stop().await;
}

#[tokio::test]
async fn head_sends_the_headers_without_the_body() {
    let scratch = Scratch::built("head");
    let relay = TestRelay::start(&scratch.site()).await;
    let response = relay.request("HEAD", "/rotunda_bg.wasm", &[]).await;
    assert_eq!(response.status, 200);
    assert!(response.body.is_empty());
    assert_eq!(response.header("content-type"), Some("application/wasm"));
    let length = WASM.len().to_string();
    assert_eq!(response.header("content-length"), Some(length.as_str()));
    relay.stop().await;
}

#[tokio::test]
async fn other_methods_are_not_allowed() {
    let scratch = Scratch::built("methods");
    let relay = TestRelay::start(&scratch.site()).await;
    let response = relay.request("POST", "/index.html", &[]).await;
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET,HEAD"));
    relay.stop().await;
}

#[tokio::test]
async fn a_matching_etag_gets_not_modified() {
    let scratch = Scratch::built("etag");
    let relay = TestRelay::start(&scratch.site()).await;
    let first = relay.get("/rotunda.js", &[]).await;
    let etag = first.header("etag").expect("an etag").to_owned();

    let again = relay
        .get("/rotunda.js", &[("If-None-Match", etag.as_str())])
        .await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    assert_eq!(again.header("cache-control"), Some("no-cache"));

    let stale = relay
        .get("/rotunda.js", &[("If-None-Match", "\"something-else\"")])
        .await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, SCRIPT.as_bytes());

    // A changed file (another length) gets another tag.
    std::fs::write(scratch.site().join("rotunda.js"), "// rebuilt\n").expect("rewrites");
    let rebuilt = relay
        .get("/rotunda.js", &[("If-None-Match", etag.as_str())])
        .await;
    assert_eq!(rebuilt.status, 200);
    assert_eq!(rebuilt.text(), "// rebuilt\n");
    assert_ne!(rebuilt.header("etag"), Some(etag.as_str()));
    relay.stop().await;
}

#[tokio::test]
async fn a_missing_file_is_not_found() {
    let scratch = Scratch::built("missing");
    let relay = TestRelay::start(&scratch.site()).await;
    for path in ["/nothing.js", "/sub/dir/file.wasm", "/sub/"] {
        let response = relay.get(path, &[]).await;
        assert_eq!(response.status, 404, "{path}");
    }
    relay.stop().await;
}

#[tokio::test]
async fn nothing_outside_the_root_is_served() {
    let scratch = Scratch::built("traversal");
    #[cfg(unix)]
    std::os::unix::fs::symlink(
        scratch.dir.join("Cargo.toml"),
        scratch.site().join("link.txt"),
    )
    .expect("links");
    let relay = TestRelay::start(&scratch.site()).await;
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/%2E%2E%2FCargo.toml",
        "/site/../../Cargo.toml",
        "/..%5cCargo.toml",
        "/%00index.html",
        "//etc/passwd",
        "/link.txt",
    ] {
        let response = relay.get(path, &[]).await;
        assert_eq!(response.status, 404, "{path}");
        assert!(
            !response.text().contains(SECRET.trim()),
            "{path} leaked the file outside the root"
        );
    }
    relay.stop().await;
}

#[tokio::test]
async fn without_an_index_the_root_says_how_to_build_the_client() {
    let scratch = Scratch::new("unbuilt");
    let relay = TestRelay::start(&scratch.site()).await;
    let response = relay.get("/", &[]).await;
    assert_eq!(response.status, 404);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let text = response.text();
    assert!(
        text.starts_with("The browser client is not built here ("),
        "{text}"
    );
    assert!(
        text.contains(&scratch.site().display().to_string()),
        "{text}"
    );
    assert!(
        text.contains("Build it with scripts/web.sh, or pass --web-root."),
        "{text}"
    );
    relay.stop().await;
}

#[tokio::test]
async fn the_relay_endpoints_take_precedence() {
    let scratch = Scratch::built("precedence");
    std::fs::write(scratch.site().join("healthz"), "from the web root").expect("writes");
    let relay = TestRelay::start(&scratch.site()).await;
    let health = relay.get("/healthz", &[]).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.text(), "ok\n");
    let hash = relay.get("/certificate.sha256", &[]).await;
    assert_eq!(hash.status, 200);
    assert_eq!(hash.header("cache-control"), Some("no-store"));
    assert_eq!(hash.text().trim().len(), 64, "{}", hash.text());
    relay.stop().await;
}

/// A bundle folder as `scripts/web.sh` makes it: content-addressed, each large file beside its
/// brotli and gzip forms.
fn bundle(scratch: &Scratch) -> &'static str {
    let folder = "b-0123456789abcdef";
    let dir = scratch.site().join(folder);
    std::fs::create_dir_all(&dir).expect("creates the bundle folder");
    std::fs::write(dir.join("rotunda_bg.wasm"), WASM).expect("writes the wasm");
    std::fs::write(dir.join("rotunda_bg.wasm.br"), b"brotli bytes").expect("writes .br");
    std::fs::write(dir.join("rotunda_bg.wasm.gz"), b"gzip bytes").expect("writes .gz");
    folder
}

#[tokio::test]
async fn the_bundle_travels_compressed_when_the_browser_takes_it() {
    let scratch = Scratch::built("compressed");
    let folder = bundle(&scratch);
    let relay = TestRelay::start(&scratch.site()).await;
    let path = format!("/{folder}/rotunda_bg.wasm");
    for (accepts, encoding, body) in [
        ("br, gzip", Some("br"), &b"brotli bytes"[..]),
        ("gzip, deflate", Some("gzip"), &b"gzip bytes"[..]),
        ("identity", None, WASM),
    ] {
        let response = relay.get(&path, &[("Accept-Encoding", accepts)]).await;
        assert_eq!(response.status, 200, "{accepts}");
        assert_eq!(response.header("content-encoding"), encoding, "{accepts}");
        assert_eq!(response.body, body, "{accepts}");
        assert_eq!(response.header("content-type"), Some("application/wasm"));
        assert!(
            response
                .header("vary")
                .is_some_and(|vary| vary.to_ascii_lowercase().contains("accept-encoding")),
            "{accepts}: caches keep the forms apart"
        );
    }
    relay.stop().await;
}

#[tokio::test]
async fn the_bundle_is_cached_across_visits_and_the_page_is_revalidated() {
    let scratch = Scratch::built("caching");
    let folder = bundle(&scratch);
    let relay = TestRelay::start(&scratch.site()).await;
    let module = relay.get(&format!("/{folder}/rotunda_bg.wasm"), &[]).await;
    assert_eq!(
        module.header("cache-control"),
        Some("public, max-age=31536000, immutable"),
        "a content-addressed file never changes"
    );
    let page = relay.get("/", &[]).await;
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let missing = relay.get(&format!("/{folder}/nothing.wasm"), &[]).await;
    assert_eq!(missing.status, 404);
    assert_ne!(
        missing.header("cache-control"),
        Some("public, max-age=31536000, immutable"),
        "a miss is not remembered for a year"
    );
    relay.stop().await;
}
