//! HTTP on the relay's TCP port: the dev certificate's fingerprint, a health check, and the
//! browser client's static bundle from the web root.
//!
//! The bundle's file names carry no content hash, so every file is sent with
//! `Cache-Control: no-cache` and an `ETag` (length and modification time): browsers revalidate
//! and get `304 Not Modified` while the file is unchanged.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::cert::CertificateStore;

/// What the handlers share.
#[derive(Clone)]
struct AppState {
    certificate: CertificateStore,
    web: Arc<WebRoot>,
}

impl FromRef<AppState> for CertificateStore {
    fn from_ref(state: &AppState) -> Self {
        state.certificate.clone()
    }
}

impl FromRef<AppState> for Arc<WebRoot> {
    fn from_ref(state: &AppState) -> Self {
        state.web.clone()
    }
}

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    certificate: CertificateStore,
    web_root: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    let web = Arc::new(WebRoot { dir: web_root });
    web.log_status().await;
    let app = Router::new()
        .route("/certificate.sha256", get(certificate_hash))
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(web_file)
        .with_state(AppState { certificate, web });
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        })
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, "HTTP server failed");
    }
}

async fn certificate_hash(State(certificate): State<CertificateStore>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        format!("{}\n", certificate.hash()),
    )
}

/// The directory the browser client is served from. It may be built (or rebuilt) while the relay
/// runs, so nothing about its contents is cached.
struct WebRoot {
    dir: PathBuf,
}

impl WebRoot {
    /// Says once, at startup, whether there is a web client to serve and from where.
    async fn log_status(&self) {
        let index = self.dir.join(INDEX);
        if tokio::fs::metadata(&index)
            .await
            .is_ok_and(|meta| meta.is_file())
        {
            tracing::info!(web_root = %self.dir.display(), "serving the browser client");
        } else {
            tracing::info!(
                web_root = %self.dir.display(),
                "no browser client to serve (no index.html); build it with scripts/web.sh, or pass --web-root"
            );
        }
    }

    /// The file under the root that `relative` names, if it exists and does not leave the root
    /// (through `..` or a symbolic link).
    async fn resolve(&self, relative: &Path) -> Option<PathBuf> {
        let root = tokio::fs::canonicalize(&self.dir).await.ok()?;
        let file = tokio::fs::canonicalize(root.join(relative)).await.ok()?;
        file.starts_with(&root).then_some(file)
    }
}

const INDEX: &str = "index.html";

/// Any path no route claims: a file of the browser client, for `GET` and `HEAD`.
async fn web_file(
    State(web): State<Arc<WebRoot>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "method not allowed\n",
        )
            .into_response();
    }
    let Some(relative) = relative_path(uri.path()) else {
        return not_found();
    };
    let Some(path) = web.resolve(&relative).await else {
        return if relative == Path::new(INDEX) {
            not_built(&web.dir)
        } else {
            not_found()
        };
    };
    match read_file(&path, &method, &headers).await {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(%error, path = %path.display(), "web file unreadable");
            not_found()
        }
    }
}

/// Opens `path` and answers with it, or with `304` when `If-None-Match` holds its `ETag`.
async fn read_file(path: &Path, method: &Method, headers: &HeaderMap) -> std::io::Result<Response> {
    let mut file = tokio::fs::File::open(path).await?;
    let meta = file.metadata().await?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let etag = etag(&meta);
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::ETAG, etag.clone()),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    if if_none_match(headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    let content_type = (
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    if method == Method::HEAD {
        let length = (header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
        return Ok((common, [content_type, length]).into_response());
    }
    let mut body = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut body).await?;
    Ok((common, [content_type], Body::from(body)).into_response())
}

/// A strong validator from the file's length and modification time, quoted.
fn etag(meta: &std::fs::Metadata) -> HeaderValue {
    let modified = meta
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    let tag = format!(
        "\"{:x}-{:x}.{:x}\"",
        meta.len(),
        modified.as_secs(),
        modified.subsec_nanos()
    );
    // Hex digits, dots, dashes and quotes only: always a valid header value.
    HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// Whether `If-None-Match` lists `etag` (weak comparison, as RFC 9110 asks) or is `*`.
fn if_none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let etag = etag.as_bytes();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/").as_bytes() == etag)
}

/// The file a request path names, relative to the web root: `/` is `index.html`. `None` for
/// anything that could reach outside the root (`..`, backslashes, NUL, absolute or drive
/// components, empty segments) or is not valid percent-encoded UTF-8.
fn relative_path(path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(path)?;
    let relative = decoded.strip_prefix('/')?;
    if relative.contains("..") || relative.contains(['\\', '\0']) {
        return None;
    }
    let mut file = PathBuf::new();
    if !relative.is_empty() {
        for segment in relative.split('/') {
            let mut components = Path::new(segment).components();
            match (components.next(), components.next()) {
                (Some(Component::Normal(name)), None) if *name == *segment => file.push(name),
                _ => return None,
            }
        }
    }
    if file.as_os_str().is_empty() {
        file.push(INDEX);
    }
    Some(file)
}

/// Decodes `%XX` escapes; `None` for a malformed escape or bytes that are not UTF-8.
fn percent_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let high = hex_digit(*bytes.get(i + 1)?)?;
            let low = hex_digit(*bytes.get(i + 2)?)?;
            out.push(high << 4 | low);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

/// The `Content-Type` for a file, by its extension.
fn content_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|extension| extension.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" | "wgsl" => "text/plain; charset=utf-8",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        _ => "application/octet-stream",
    }
}

fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "not found\n".to_owned())
}

/// `/` when the web root has no `index.html`: says how to get one.
fn not_built(dir: &Path) -> Response {
    plain(
        StatusCode::NOT_FOUND,
        format!(
            "The browser client is not built here ({}). Build it with scripts/web.sh, or pass --web-root.\n",
            dir.display()
        ),
    )
}

fn plain(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths_map_inside_the_root_or_nowhere() {
        assert_eq!(relative_path("/"), Some(PathBuf::from("index.html")));
        assert_eq!(relative_path("/app.js"), Some(PathBuf::from("app.js")));
        assert_eq!(
            relative_path("/assets/a%20b.png"),
            Some(PathBuf::from("assets/a b.png"))
        );
        for hostile in [
            "/../Cargo.toml",
            "/%2e%2e/Cargo.toml",
            "/%2E%2E%2FCargo.toml",
            "/a/../../b",
            "/..",
            "//etc/passwd",
            "/a//b",
            "/./index.html",
            "/a\\b",
            "/%5c..%5cb",
            "/a%00b",
            "/%zz",
            "/%ff",
            "relative",
        ] {
            assert_eq!(relative_path(hostile), None, "{hostile}");
        }
    }

    #[test]
    fn content_types_follow_the_extension() {
        for (name, expected) in [
            ("index.html", "text/html; charset=utf-8"),
            ("rotunda.js", "text/javascript; charset=utf-8"),
            ("worker.mjs", "text/javascript; charset=utf-8"),
            ("rotunda_bg.wasm", "application/wasm"),
            ("style.CSS", "text/css; charset=utf-8"),
            ("shader.wgsl", "text/plain; charset=utf-8"),
            ("room.glb", "application/octet-stream"),
            ("floor.ktx2", "application/octet-stream"),
            ("noextension", "application/octet-stream"),
        ] {
            assert_eq!(content_type(Path::new(name)), expected, "{name}");
        }
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists() {
        let etag = HeaderValue::from_static("\"a-b.c\"");
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static(value));
            if_none_match(&headers, &etag)
        };
        assert!(with("\"a-b.c\""));
        assert!(with("W/\"a-b.c\""));
        assert!(with("\"x\", \"a-b.c\""));
        assert!(with("*"));
        assert!(!with("\"a-b.d\""));
        assert!(!if_none_match(&HeaderMap::new(), &etag));
    }
}
