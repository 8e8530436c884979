//! TLS to PostgreSQL: a throwaway server with `ssl=on` and a certificate
//! from a test authority; the store connects only when the certificate
//! verifies as `sslmode` asks, and then the server sees an encrypted
//! session.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use durable_runtime::StoreError;
use durable_runtime::prelude::*;
use durable_runtime::store::postgres::{PgOptions, PgStore};
use durable_runtime::testing::backends::PgCluster;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

mod common;
use common::Within;

#[activity]
async fn charge(cents: u32) -> Result<u32, ActivityError> {
    Ok(cents)
}

#[workflow]
async fn order(cents: u32) -> Result<u32, WorkflowError> {
    Ok(charge(cents).await?)
}

/// A certificate authority, and a server certificate it signed for
/// `names`; both written as PEM files into `dir`: `ca.pem`, `server.pem`,
/// `server.key`; and `other-ca.pem`, an authority that signed nothing.
fn certificates(dir: &Path, names: &[&str]) {
    let authority = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    };
    let ca = authority("durable test CA");
    let other = authority("another CA");
    let key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("other-ca.pem"), other.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
    // the server refuses a key others may read
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    if running_as_root() {
        // the test server runs as user postgres
        let status = std::process::Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A server with `ssl=on` and the certificate made for `names`.
fn tls_server(dir: &Path, names: &[&str]) -> PgCluster {
    certificates(dir, names);
    let file = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    PgCluster::start_with(&[
        ("ssl", "on"),
        ("ssl_cert_file", &file("server.pem")),
        ("ssl_key_file", &file("server.key")),
    ])
    .expect("a PostgreSQL server with TLS")
}

/// Sessions of the server that are encrypted, seen by a plain connection.
async fn encrypted_sessions(port: u16) -> i64 {
    let (client, connection) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=durable dbname=postgres"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    client
        .query_one("SELECT count(*) FROM pg_stat_ssl WHERE ssl", &[])
        .await
        .unwrap()
        .get(0)
}

fn with_tls(url: &str, mode: &str, root: &Path) -> String {
    format!("{url}?sslmode={mode}&sslrootcert={}", root.display())
}

#[tokio::test]
async fn a_verified_server_gets_encrypted_sessions_and_runs_workflows() {
    let dir = tempfile::tempdir().unwrap();
    let server = tls_server(dir.path(), &["localhost"]);
    let url = server
        .create_database()
        .unwrap()
        .replace("127.0.0.1", "localhost");
    // `createdb` (libpq, sslmode=prefer) used TLS: its session may still be
    // ending on the server
    let mut before = encrypted_sessions(server.port()).await;
    for _ in 0..300 {
        if before == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        before = encrypted_sessions(server.port()).await;
    }
    assert_eq!(before, 0, "no encrypted session before the store connects");
    let store = PgStore::connect_with(
        &with_tls(&url, "verify-full", &dir.path().join("ca.pem")),
        PgOptions::default().pool_size(3),
    )
    .await
    .unwrap();
    let rt = Runtime::builder()
        .workflow::<order>()
        .open_store(store)
        .await
        .unwrap();
    let out = rt
        .start("o-1", order(1999), IdPolicy::Reject)
        .await
        .unwrap()
        .result()
        .within()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out, 1999);
    // the pool's connections and the listener: every one of them encrypted
    assert!(encrypted_sessions(server.port()).await >= 2);
    rt.shutdown().await;
}

#[tokio::test]
async fn a_certificate_that_does_not_verify_is_refused_as_the_mode_says() {
    let dir = tempfile::tempdir().unwrap();
    // the certificate names `localhost`; the store connects to 127.0.0.1
    let server = tls_server(dir.path(), &["localhost"]);
    let url = server.create_database().unwrap();
    let ca = dir.path().join("ca.pem");
    let unreachable = |result: Result<PgStore, StoreError>, words: &str| match result {
        Err(e @ StoreError::Unreachable { .. }) => {
            assert!(e.to_string().contains(words), "{e}")
        }
        Err(other) => panic!("expected Unreachable, got {other}"),
        Ok(_) => panic!("connected to a server whose certificate should not verify"),
    };
    // verify-full and require compare the name; verify-ca does not
    for mode in ["verify-full", "require", "prefer"] {
        unreachable(
            PgStore::connect(&with_tls(&url, mode, &ca)).await,
            "certificate",
        );
    }
    let store = PgStore::connect(&with_tls(&url, "verify-ca", &ca))
        .await
        .unwrap();
    drop(store);
    // an authority that did not sign it: no mode that verifies connects
    let other = dir.path().join("other-ca.pem");
    for mode in ["verify-ca", "verify-full"] {
        unreachable(
            PgStore::connect(&with_tls(&url, mode, &other)).await,
            "certificate",
        );
    }
}

#[tokio::test]
async fn tls_asked_of_a_server_without_it_is_refused_and_plain_stays_plain() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path(), &["localhost"]);
    // the shared test server has no TLS
    let cluster = PgCluster::shared().unwrap();
    let url = cluster.create_database().unwrap();
    match PgStore::connect(&with_tls(&url, "require", &dir.path().join("ca.pem"))).await {
        Err(StoreError::Unreachable { .. }) => {}
        Err(other) => panic!("expected Unreachable, got {other}"),
        Ok(_) => panic!("`require` connected without TLS"),
    }
    // `prefer` falls back to plain text, and no mode given is plain text
    for url in [
        with_tls(&url, "prefer", &dir.path().join("ca.pem")),
        url.clone(),
    ] {
        let store = PgStore::connect(&url).await.unwrap();
        drop(store);
    }
}
