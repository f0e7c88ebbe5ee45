//! Certificates generated at test time: a CA and the server and client
//! certificates it signs, written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    SanType,
};

pub struct Ca {
    cert: Certificate,
    key: KeyPair,
    pub name: String,
}

/// PEM files of one certificate and its key.
#[derive(Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            cert,
            key,
            name: name.into(),
        }
    }

    /// Writes the CA certificate to `dir/<name>.pem`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join(format!("{}.pem", self.name));
        std::fs::write(&path, self.cert.pem()).unwrap();
        path
    }

    /// A certificate for 127.0.0.1 and localhost, for a server or a client,
    /// written to `dir/<stem>.crt` and `dir/<stem>.key`. A client
    /// certificate also names `stem` (a gateway's id, which the control
    /// plane checks under mutual TLS).
    pub fn issue(&self, dir: &Path, stem: &str, client: bool) -> Issued {
        let mut names = vec!["localhost".to_string()];
        if client {
            names.push(stem.to_string());
        }
        let mut params = CertificateParams::new(names).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, stem);
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let issued = Issued {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&issued.cert, cert.pem()).unwrap();
        std::fs::write(&issued.key, key.serialize_pem()).unwrap();
        issued
    }
}
