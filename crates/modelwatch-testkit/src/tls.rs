//! Module implementing test certificates: a CA, a server certificate for 127.0.0.1
//! and localhost, and a client certificate, all signed by the CA and written as PEM
//! files. See [`pki`].

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};

/// The PEM files [`pki`] wrote.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate (`ca.crt`).
    pub ca: PathBuf,
    /// The server certificate for 127.0.0.1 and localhost (`server.crt`).
    pub server_cert: PathBuf,
    /// Its key (`server.key`).
    pub server_key: PathBuf,
    /// A client certificate (CN `prometheus`, `client.crt`).
    pub client_cert: PathBuf,
    /// Its key (`client.key`).
    pub client_key: PathBuf,
}

/// Makes a CA whose common name is `ca_name`, a server and a client certificate
/// signed by it, and writes them into `dir`.
pub fn pki(dir: &Path, ca_name: &str) -> Pki {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write a PEM file");
        path
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("CA key");
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");

    let mut server = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    server
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().expect("server key");
    let server_cert = server
        .signed_by(&server_key, &ca, &ca_key)
        .expect("server certificate");

    let mut client = CertificateParams::new(vec!["prometheus".to_string()]).expect("params");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate().expect("client key");
    let client_cert = client
        .signed_by(&client_key, &ca, &ca_key)
        .expect("client certificate");

    Pki {
        ca: write("ca.crt", ca.pem()),
        server_cert: write("server.crt", server_cert.pem()),
        server_key: write("server.key", server_key.serialize_pem()),
        client_cert: write("client.crt", client_cert.pem()),
        client_key: write("client.key", client_key.serialize_pem()),
    }
}
