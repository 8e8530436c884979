//! TLS to the server, as the URL asks for it (`sslmode`, `sslrootcert`),
//! with rustls.
//!
//! | `sslmode` | connection | the server's certificate |
//! |---|---|---|
//! | absent, `disable` | plain | — |
//! | `prefer` | TLS if the server offers it, else plain | verified as for `verify-full` when TLS is used |
//! | `require`, `verify-full` | TLS or no connection | chain to a trusted root and the host name |
//! | `verify-ca` | TLS or no connection | chain to a trusted root only |
//!
//! Stricter than libpq, whose `prefer` and `require` encrypt without
//! checking whom they talk to: asked for TLS, this store always verifies.
//! The trusted roots are the file `sslrootcert` names (PEM), or the
//! system's (`sslrootcert=system`, or none given). tokio-postgres parses
//! neither parameter's full set of values, so both are taken out of the URL
//! here.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::SslMode;

/// The connector every connection of the store uses (a plain connection
/// never calls it).
pub(super) type Connector = tokio_postgres_rustls::MakeRustlsConnect;

/// What the URL asks of TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(value: &str) -> Result<Mode, String> {
        Ok(match value {
            "disable" => Mode::Disable,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode={other} is not supported: use disable, prefer, require, verify-ca or verify-full"
                ));
            }
        })
    }

    /// The driver's setting: whether TLS is tried, and whether it must be.
    pub(super) fn ssl_mode(self) -> SslMode {
        match self {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        }
    }
}

/// The TLS part of a connection URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Asked {
    pub(super) mode: Mode,
    /// `sslrootcert`: a PEM file, or `system`.
    pub(super) root_cert: Option<String>,
}

/// Takes `sslmode` and `sslrootcert` out of `url` (a `postgres://` URL or
/// a `key=value` string): the rest, for the driver, and what they ask.
pub(super) fn split(url: &str) -> Result<(String, Asked), String> {
    let mut asked = Asked {
        mode: Mode::Disable,
        root_cert: None,
    };
    let mut take = |key: &str, value: &str| -> Result<bool, String> {
        match key {
            "sslmode" => asked.mode = Mode::parse(value)?,
            "sslrootcert" => asked.root_cert = Some(value.to_owned()),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(key, &percent_decode(value)?)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            let (key, value) = word.split_once('=').unwrap_or((word, ""));
            if !take(key, value)? {
                kept.push(word);
            }
        }
        kept.join(" ")
    };
    if asked.root_cert.is_some() && asked.mode == Mode::Disable {
        return Err(
            "sslrootcert is given but TLS is not asked for: add sslmode=verify-full".into(),
        );
    }
    Ok((rest, asked))
}

fn percent_decode(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("a bad %-escape in `{value}`"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{value}` is not UTF-8"))
}

/// The connector for what the URL asks: its trusted roots loaded and its
/// verification chosen. For a plain connection, one that trusts nothing.
pub(super) fn connector(asked: &Asked) -> Result<Connector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    if asked.mode == Mode::Disable {
        let config = builder
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth();
        return Ok(Connector::new(config));
    }
    let roots = roots(asked.root_cert.as_deref())?;
    let config = if asked.mode == Mode::VerifyCa {
        let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("TLS: {e}"))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(chain)))
            .with_no_client_auth()
    } else {
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Connector::new(config))
}

/// The roots `sslrootcert` names: a PEM file's certificates, or the
/// system's.
fn roots(root_cert: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match root_cert {
        Some(file) if file != "system" => {
            let certs = CertificateDer::pem_file_iter(file)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| format!("sslrootcert={file}: {e}"))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("sslrootcert={file} holds no usable certificate"));
            }
        }
        _ => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(
                    "TLS is asked for but the system trusts no root certificate: give sslrootcert=FILE (PEM)".into(),
                );
            }
        }
    }
    Ok(roots)
}

/// `verify-ca`: the certificate must chain to a trusted root; the name in
/// it is not compared with the host connected to.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_parameters_are_taken_out_of_either_form() {
        let (rest, asked) = split(
            "postgres://ann@db:5432/x?application_name=a&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        )
        .unwrap();
        assert_eq!(rest, "postgres://ann@db:5432/x?application_name=a");
        assert_eq!(asked.mode, Mode::VerifyFull);
        assert_eq!(asked.root_cert.as_deref(), Some("/etc/ca.pem"));
        let (rest, asked) = split("host=db user=ann sslmode=require").unwrap();
        assert_eq!(
            (rest.as_str(), asked.mode),
            ("host=db user=ann", Mode::Require)
        );
        let (rest, asked) = split("postgres://db/x").unwrap();
        assert_eq!(
            (rest.as_str(), asked.mode),
            ("postgres://db/x", Mode::Disable)
        );
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_naming_it() {
        for (url, words) in [
            ("postgres://db/x?sslmode=allow", "sslmode=allow"),
            ("postgres://db/x?sslrootcert=/ca.pem", "sslmode=verify-full"),
            (
                "postgres://db/x?sslmode=require&sslrootcert=%zz",
                "%-escape",
            ),
        ] {
            let why = split(url).unwrap_err();
            assert!(why.contains(words), "{url}: {why}");
        }
        let asked = Asked {
            mode: Mode::VerifyFull,
            root_cert: Some("/no/such/ca.pem".into()),
        };
        let why = connector(&asked).err().unwrap();
        assert!(why.contains("/no/such/ca.pem"), "{why}");
    }
}
