//! The HTTP API over TLS: the configured certificate chain and key loaded into rustls, and an
//! accept loop that hands each connection, once its handshake is done, to the API's router
//! (HTTP/1.1 or HTTP/2), with the peer's address for the login lockout.

use std::net::SocketAddr;
use std::sync::Arc;

use argus_config::TlsFiles;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::ServiceError;

/// A TLS acceptor for the certificate chain and key of `files`.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ServiceError> {
    let fail = |what: String| ServiceError::build("api tls", std::io::Error::other(what));
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| fail(format!("cannot read {}: {e}", path.display())))
    };
    let cert_pem = read(&files.cert)?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("{}: {e}", files.cert.display())))?;
    if certs.is_empty() {
        return Err(fail(format!(
            "{}: no certificate in it",
            files.cert.display()
        )));
    }
    let key_pem = read(&files.key)?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| fail(format!("{}: {e}", files.key.display())))?
        .ok_or_else(|| fail(format!("{}: no private key in it", files.key.display())))?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| fail(format!("certificate and key do not go together: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serve `app` over TLS on `listener` until `stopped` completes. A failed handshake closes that
/// connection only.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: axum::Router,
    stopped: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(stopped);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut stopped => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("api: cannot accept a connection: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let app = app
            .clone()
            .layer(axum::Extension(ConnectInfo::<SocketAddr>(peer)));
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    tracing::debug!(%peer, "api: tls handshake failed: {e}");
                    return;
                }
            };
            let service = TowerToHyperService::new(app);
            if let Err(e) = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, "api: connection ended: {e}");
            }
        });
    }
}
