//! HTTP on the relay's TCP port: the dev certificate's fingerprint, a health check, and the
//! browser client's static bundle from the web root.
//!
//! Files are served by `tower-http`'s `ServeDir`: content types, `ETag` and `Last-Modified` with
//! `304 Not Modified`, ranges, paths that cannot leave the root, and the precompressed
//! `.br`/`.gz` siblings `scripts/web.sh` makes when the browser accepts them. On top of it, the
//! headers we need: the bundle's content-addressed folders (`b-<hash>/`) never change, so they
//! may be cached for a year; everything else (`index.html`) is revalidated on every visit. And a
//! symbolic link in the root never leads a request outside it.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;
use tower_http::services::ServeDir;

use crate::cert::CertificateStore;

/// The prefix of the bundle's content-addressed folders.
pub const BUNDLE_PREFIX: &str = "/b-";

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    certificate: CertificateStore,
    web_root: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    log_status(&web_root).await;
    let files = ServeDir::new(&web_root)
        .precompressed_br()
        .precompressed_gzip()
        .append_index_html_on_directories(true)
        .not_found_service(get(not_found).with_state(web_root.clone()));
    let app = Router::new()
        .route("/certificate.sha256", get(certificate_hash))
        .with_state(certificate)
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback_service(files)
        .layer(middleware::from_fn_with_state(web_root, confine))
        .layer(middleware::map_response(cache_headers));
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        })
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, "HTTP server failed");
    }
}

/// Says once, at startup, whether there is a web client to serve and from where.
async fn log_status(dir: &Path) {
    if tokio::fs::metadata(dir.join("index.html"))
        .await
        .is_ok_and(|meta| meta.is_file())
    {
        tracing::info!(web_root = %dir.display(), "serving the browser client");
    } else {
        tracing::info!(
            web_root = %dir.display(),
            "no browser client to serve (no index.html); build it with scripts/web.sh, or pass --web-root"
        );
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

/// A request whose path, followed through symbolic links, would leave the web root is not
/// found; anything else goes on to the files.
async fn confine(State(root): State<PathBuf>, request: Request, next: Next) -> Response {
    let escapes = match request_file(&root, request.uri().path()) {
        Some(file) => match (
            tokio::fs::canonicalize(&root).await,
            tokio::fs::canonicalize(&file).await,
        ) {
            (Ok(root), Ok(real)) => !real.starts_with(root),
            // Missing: the files answer 404 themselves.
            _ => false,
        },
        None => true,
    };
    if escapes {
        return plain(StatusCode::NOT_FOUND, "not found\n".to_owned());
    }
    next.run(request).await
}

/// The file a request path names under `root`, before links are followed; `None` for a path
/// that is not valid percent-encoded UTF-8 or holds a NUL.
fn request_file(root: &Path, path: &str) -> Option<PathBuf> {
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    if decoded.contains('\0') {
        return None;
    }
    Some(root.join(decoded.trim_start_matches('/')))
}

/// The bundle's content-addressed folders are cached for a year; the rest is revalidated.
async fn cache_headers(uri: Uri, mut response: Response) -> Response {
    let immutable = uri.path().starts_with(BUNDLE_PREFIX) && response.status() == StatusCode::OK;
    let headers = response.headers_mut();
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(if immutable {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            }),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// No such file: `/` (or `/index.html`) without an index says how to build the client.
async fn not_found(State(root): State<PathBuf>, request: Request<Body>) -> Response {
    let path = request.uri().path();
    if path == "/" || path == "/index.html" {
        return plain(
            StatusCode::NOT_FOUND,
            format!(
                "The browser client is not built here ({}). Build it with scripts/web.sh, or pass --web-root.\n",
                root.display()
            ),
        );
    }
    plain(StatusCode::NOT_FOUND, "not found\n".to_owned())
}

fn plain(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths_are_decoded_under_the_root() {
        let root = Path::new("/srv/web");
        assert_eq!(
            request_file(root, "/a%20b.js"),
            Some(PathBuf::from("/srv/web/a b.js"))
        );
        assert_eq!(request_file(root, "/"), Some(PathBuf::from("/srv/web/")));
        assert_eq!(request_file(root, "/a%00b"), None);
        assert_eq!(request_file(root, "/%ff"), None);
    }
}
