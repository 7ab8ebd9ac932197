//! The environment variables that make common clients trust faultline's CA, printed as shell
//! `export` lines a user can paste (or `eval "$(faultline ca init)"`).

use std::path::Path;

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
        "gRPC core (grpcio, bazel's remote cache)",
    ),
];

/// `export NAME='PATH'` for every variable in [`TRUST_VARS`], each preceded by a comment naming
/// its clients, so the text can be pasted or given to `eval` as it is.
pub fn export_lines(cert: &Path) -> String {
    let quoted = shell_quote(&cert.display().to_string());
    let mut text = String::new();
    for (name, clients) in TRUST_VARS {
        text.push_str(&format!("# {clients}\nexport {name}={quoted}\n"));
    }
    text
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
        let text = export_lines(Path::new("/home/u/it's here/ca.pem"));
        for (name, _) in TRUST_VARS {
            assert!(
                text.contains(&format!("export {name}='/home/u/it'\\''s here/ca.pem'\n")),
                "{name} missing in {text}"
            );
        }
        assert!(text
            .lines()
            .all(|l| l.starts_with("# ") || l.starts_with("export ")));
    }
}
