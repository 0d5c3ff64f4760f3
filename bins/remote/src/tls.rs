//! tls - the client's two TLS configurations.
//!
//! Verified: the certificate must chain to the system's trust store
//! (rustls-native-certs: /etc/ssl/certs, kept by the administrator) or to
//! `[smtp] ca_file`, and name the host. Used where TLS is required (the
//! relayhost by default, `tls_required`).
//!
//! Opportunistic: for MX hosts on port 25, where the name came from an
//! unauthenticated MX lookup and self-signed certificates are common, the
//! session is encrypted against passive eavesdroppers but the certificate
//! is not judged (Postfix's `smtp_tls_security_level = may`). Signatures
//! on the handshake are still checked.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use std::path::Path;
use std::sync::Arc;

/// provider - ring, as the servers use.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// verified - a configuration that checks the certificate chain and name.
pub fn verified(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(f) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(f)
            .map_err(|e| format!("{}: cannot read certificates: {e}", f.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: bad certificate: {e}", f.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate in the file", f.display()));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| format!("{}: unusable CA certificate: {e}", f.display()))?;
        }
    }
    if roots.is_empty() {
        return Err(
            "no trusted CA certificates (install ca-certificates or set [smtp] ca_file)".into(),
        );
    }
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// opportunistic - a configuration that encrypts without judging the certificate.
pub fn opportunistic() -> Result<Arc<ClientConfig>, String> {
    let p = provider();
    let v = Arc::new(AnyCert {
        algs: p.signature_verification_algorithms,
    });
    let cfg = ClientConfig::builder_with_provider(p)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(v)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// Accepts any certificate, but still verifies handshake signatures.
#[derive(Debug)]
struct AnyCert {
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
