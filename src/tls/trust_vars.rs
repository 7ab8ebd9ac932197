//! The environment variables that make common clients trust faultline's CA, printed as shell
//! `export` lines a user can paste (or `eval "$(faultline ca init)"`).

use std::path::Path;

use rustls::pki_types::CertificateDer;

/// Each variable and the clients that read it. All of them replace the client's default bundle,
/// which is right for a client whose every TLS connection goes through faultline.
pub const TRUST_VARS: &[(&str, &str)] = &[
    (
        "SSL_CERT_FILE",
        "OpenSSL-based clients, Python ssl, Go, Ruby",
    ),
    ("REQUESTS_CA_BUNDLE", "Python requests (dvc's HTTP remotes)"),
    ("AWS_CA_BUNDLE", "boto3, the AWS CLI, dvc's S3 remotes"),
    ("CURL_CA_BUNDLE", "curl"),
    ("GIT_SSL_CAINFO", "git over HTTPS, git-annex"),
    (
        "NODE_EXTRA_CA_CERTS",
        "Node.js (added to its built-in roots)",
    ),
    (
        "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
        "gRPC's C core (grpcio, C++, Ruby); Bazel's remote cache is Java gRPC, which reads none of these: --tls_certificate=ca.pem",
    ),
];

/// The variable whose clients add the file to their built-in roots (the CA alone does).
const ADDS_TO_ROOTS: &str = "NODE_EXTRA_CA_CERTS";

/// `export NAME='PATH'` for every variable in [`TRUST_VARS`], each preceded by a comment naming
/// its clients, so the text can be pasted or given to `eval` as it is. The variables that
/// replace a client's roots name `bundle` (the machine's roots and faultline's CA): a shell
/// that evaluated them still reaches every other HTTPS server, and so does faultline's own
/// upstream check, which reads `SSL_CERT_FILE` too. Node's adds `cert` to its roots.
pub fn export_lines(cert: &Path, bundle: &Path) -> String {
    let mut text = String::new();
    for (name, clients) in TRUST_VARS {
        let file = if *name == ADDS_TO_ROOTS { cert } else { bundle };
        let quoted = shell_quote(&file.display().to_string());
        text.push_str(&format!("# {clients}\nexport {name}={quoted}\n"));
    }
    text
}

/// Where distributions keep the system's bundle, read when `SSL_CERT_FILE` names a faultline
/// bundle (see [`machine_roots`]).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The machine's trust roots, as `SSL_CERT_FILE`/`SSL_CERT_DIR` say, except in a shell that
/// evaluated `faultline ca init` already: there `SSL_CERT_FILE` names a faultline bundle (the
/// old CA's among the roots) or one since removed (a trial rotated the CA and got a bundle of the
/// new CA alone), so the system's own bundle is read instead.
fn machine_roots() -> Vec<CertificateDer<'static>> {
    let named = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    let ours = named.as_deref().is_some_and(|file| {
        !file.exists()
            || (file.file_name() == Some(std::ffi::OsStr::new(crate::tls::ca_dir::BUNDLE_FILE))
                && file.with_file_name(crate::tls::ca_dir::CERT_FILE).exists())
    });
    if !ours {
        return rustls_native_certs::load_native_certs().certs;
    }
    use rustls::pki_types::pem::PemObject;
    SYSTEM_BUNDLES
        .iter()
        .filter_map(|path| CertificateDer::pem_file_iter(path).ok())
        .map(|certs| certs.filter_map(Result::ok).collect::<Vec<_>>())
        .find(|certs| !certs.is_empty())
        .unwrap_or_default()
}

/// Writes `bundle`: the machine's trust roots (as `SSL_CERT_FILE`/`SSL_CERT_DIR` say, once
/// each) followed by faultline's CA `ca`, as PEM. Written to a temporary name and renamed, so a
/// shell reading it meanwhile never sees half a bundle.
pub fn write_bundle(bundle: &Path, ca: &CertificateDer<'_>) -> std::io::Result<usize> {
    use base64::Engine as _;
    let machine = machine_roots();
    let mut seen: Vec<&[u8]> = Vec::new();
    let mut pem = String::new();
    let mut roots = 0;
    for cert in machine.iter().map(|c| c.as_ref()).chain([ca.as_ref()]) {
        if seen.contains(&cert) {
            continue;
        }
        seen.push(cert);
        roots += 1;
        let encoded = base64::engine::general_purpose::STANDARD.encode(cert);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    let partial = bundle.with_extension("pem.partial");
    std::fs::write(&partial, pem)?;
    std::fs::rename(&partial, bundle)?;
    Ok(roots)
}

/// Single-quotes `text` for a POSIX shell (a `'` inside becomes `'\''`).
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_is_exported_with_the_quoted_path() {
        let text = export_lines(
            Path::new("/home/u/it's here/ca.pem"),
            Path::new("/home/u/it's here/bundle.pem"),
        );
        for (name, _) in TRUST_VARS {
            let file = if *name == ADDS_TO_ROOTS {
                "ca"
            } else {
                "bundle"
            };
            assert!(
                text.contains(&format!(
                    "export {name}='/home/u/it'\\''s here/{file}.pem'\n"
                )),
                "{name} missing in {text}"
            );
        }
        assert!(text
            .lines()
            .all(|l| l.starts_with("# ") || l.starts_with("export ")));
    }
}
