//! TLS with rustls (ring provider): server configurations for the public
//! and API listeners from PEM files, and the client configuration used
//! for https targets.
//!
//! Mapping of the reference's OpenSSL options:
//! - `--ssl-request-cert` with `--ssl-reject-unauthorized`: client
//!   certificates are required and verified against `--ssl-ca`.
//! - `--ssl-request-cert` alone: a certificate is asked for but optional;
//!   one that is presented must still verify against `--ssl-ca`.
//! - `--ssl-protocol TLSv1_2|TLSv1_3` restricts the version.
//! - Targets: `--client-ssl-ca` replaces the built-in web roots,
//!   `--client-ssl-key/cert` are presented as a client certificate, and
//!   `--insecure` turns verification off.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::cli::{Config, TlsFiles, TlsVersion};

/// A TLS file or setting that cannot be used.
#[derive(Debug)]
pub struct TlsError(pub String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn versions(v: Option<TlsVersion>) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static BOTH: [&rustls::SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    static V12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    static V13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    match v {
        None => &BOTH,
        Some(TlsVersion::Tls12) => &V12,
        Some(TlsVersion::Tls13) => &V13,
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{}: no certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError(format!("{}: {e}", path.display())))
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| TlsError(format!("{}: {e}", path.display())))?;
    }
    Ok(roots)
}

/// A server configuration (HTTP/1.1 only) from `files`.
pub fn server_config(files: &TlsFiles, what: &str) -> Result<Arc<ServerConfig>, TlsError> {
    let (Some(key), Some(cert)) = (&files.key, &files.cert) else {
        return Err(TlsError(format!(
            "{what}: a key and a certificate are both needed"
        )));
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(files.protocol))
        .map_err(|e| TlsError(format!("{what}: {e}")))?;
    let builder = if files.request_cert {
        let Some(ca) = &files.ca else {
            return Err(TlsError(format!(
                "{what}: requesting client certificates needs a CA file to verify them"
            )));
        };
        let roots = Arc::new(load_roots(ca)?);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
        let verifier = if files.reject_unauthorized {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        builder.with_client_cert_verifier(
            verifier
                .build()
                .map_err(|e| TlsError(format!("{what}: {e}")))?,
        )
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(load_certs(cert)?, load_key(key)?)
        .map_err(|e| TlsError(format!("{what}: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client configuration for https targets.
pub fn client_config(config: &Config) -> Result<ClientConfig, TlsError> {
    let files = &config.client_tls;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(files.protocol))
        .map_err(|e| TlsError(format!("client TLS: {e}")))?;
    let builder = if config.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
    } else {
        let roots = match &files.ca {
            Some(ca) => load_roots(ca)?,
            None => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        builder.with_root_certificates(roots)
    };
    let tls = match (&files.key, &files.cert) {
        (Some(key), Some(cert)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| TlsError(format!("client TLS: {e}")))?,
        _ => builder.with_no_client_auth(),
    };
    // ALPN is set by the connector (HTTP/1.1 only).
    Ok(tls)
}

/// `--insecure`: accepts any target certificate (signatures on the
/// handshake itself are still checked, so the session is encrypted).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
