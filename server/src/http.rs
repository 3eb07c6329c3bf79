//! HTTP on the relay's TCP port: the dev certificate's fingerprint and a health check.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use crate::cert::CertificateStore;

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    certificate: CertificateStore,
    mut stop: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/certificate.sha256", get(certificate_hash))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(certificate);
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
