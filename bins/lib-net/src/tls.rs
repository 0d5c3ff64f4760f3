//! tls - the servers' TLS configuration: a PEM certificate chain and key
//! from `[tls] cert` and `key`, TLS 1.2 and 1.3 only, ring as the provider.
//! A broken file is an error that names it, never a panic.

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// from_config - the servers' TLS setup from `[tls]`: None when no
/// certificate is configured; a configuration error (exit 78) for a file
/// that cannot be used, or for `implicit` TLS (--tls) with none set.
/// Called while still root: the key is root's.
pub fn from_config(
    cfg: &posthorn_mail::Config,
    implicit: bool,
) -> Result<Option<Arc<ServerConfig>>, posthorn_sys::exit::Exit> {
    use posthorn_sys::exit::{CONFIG, Exit};
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => Some(server_config(c, k).map_err(|e| Exit::new(CONFIG, e))?),
        _ => None,
    };
    if implicit && tls.is_none() {
        return Err(Exit::new(CONFIG, "--tls needs [tls] cert and key"));
    }
    Ok(tls)
}

/// server_config - load the certificate chain and the key, and build the
/// configuration every TLS session of this process shares.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("{}: cannot read certificates: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: bad certificate: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in the file", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("{}: cannot read the private key: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            format!(
                "{}: the key does not fit the certificate, or is unusable: {e}",
                cert.display()
            )
        })?;
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// self_signed - a certificate and key made with openssl, as a user would.
    fn self_signed(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        let st = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=mail.test",
                "-addext",
                "subjectAltName=DNS:mail.test",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
            ])
            .arg("-keyout")
            .arg(&k)
            .arg("-out")
            .arg(&c)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl");
        assert!(st.success());
        (c, k)
    }

    #[test]
    fn loads_and_completes_a_handshake() {
        let d = tempfile::tempdir().unwrap();
        let (c, k) = self_signed(d.path());
        let server = server_config(&c, &k).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&c).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let conn = rustls::ServerConnection::new(server).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, s);
            let mut buf = [0u8; 5];
            tls.read_exact(&mut buf).unwrap();
            tls.write_all(b"pong!").unwrap();
            tls.flush().unwrap();
            buf
        });
        let name = rustls_pki_types::ServerName::try_from("mail.test").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, std::net::TcpStream::connect(addr).unwrap());
        tls.write_all(b"ping!").unwrap();
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong!");
        assert_eq!(t.join().unwrap(), *b"ping!");
        assert_eq!(
            tls.conn.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_2)
        );
    }

    #[test]
    fn broken_files_name_themselves() {
        let d = tempfile::tempdir().unwrap();
        let (c, k) = self_signed(d.path());
        let missing = d.path().join("nope.pem");
        assert!(
            server_config(&missing, &k)
                .unwrap_err()
                .contains("nope.pem")
        );
        let garbage = d.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        assert!(
            server_config(&garbage, &k)
                .unwrap_err()
                .contains("garbage.pem")
        );
        assert!(
            server_config(&c, &garbage)
                .unwrap_err()
                .contains("garbage.pem")
        );
        // A key that does not belong to the certificate.
        let other = tempfile::tempdir().unwrap();
        let (_, k2) = self_signed(other.path());
        assert!(server_config(&c, &k2).is_err());
    }
}
