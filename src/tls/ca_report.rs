//! What `faultline ca init` and `faultline ca show` print: the certificate path, its SHA-256
//! fingerprint and validity, and (for init) the `export` lines that make clients trust it.
//!
//! `ca init` prints only `#` comments and `export` lines on stdout, so its output can be pasted
//! into a shell or given to `eval "$(faultline ca init)"` as it is.

use crate::tls::ca::{CaCertificate, Created};
use crate::tls::ca_dir::CaDir;
use crate::tls::trust_vars::export_lines;

/// The text of `faultline ca init` for `cert` in `dir`; `tightened` is the mode the folder had
/// when `ca init` made it 0700.
pub fn init_report(
    dir: &CaDir,
    cert: &CaCertificate,
    created: Created,
    tightened: Option<u32>,
    bundle_roots: usize,
) -> String {
    let what = match created {
        Created::New => "created a new CA in",
        Created::Existing => "kept the existing CA in",
    };
    let tightened = tightened
        .map(|mode| format!("# faultline: the folder was mode {mode:04o}; it is 0700 now (only you may list it)\n"))
        .unwrap_or_default();
    format!(
        "# faultline: {what} {}\n\
         {tightened}\
         # certificate: {}\n\
         # SHA-256 fingerprint: {}\n\
         # valid until {}\n\
         # trust bundle: {} (this machine's roots and the CA: {bundle_roots} certificates)\n\
         # Make the clients that go through faultline trust it (paste these lines, or run\n\
         # eval \"$(faultline ca init --dir {})\"); the key {} stays private. The bundle keeps every\n\
         # other HTTPS server reachable from that shell (run `ca init` again after the\n\
         # machine's roots change).\n\
         {}",
        dir.dir().display(),
        cert.path.display(),
        cert.fingerprint(),
        cert.not_after.date(),
        dir.bundle_path().display(),
        crate::shell::word(&dir.dir().to_string_lossy()),
        dir.key_path().display(),
        export_lines(&cert.path, &dir.bundle_path())
    )
}

/// The text of `faultline ca show` for `cert`.
pub fn show_report(dir: &CaDir, cert: &CaCertificate) -> String {
    format!(
        "certificate: {}\nkey: {}\nsubject: {}\nSHA-256 fingerprint: {}\nvalid: {} to {}\n",
        cert.path.display(),
        dir.key_path().display(),
        cert.subject,
        cert.fingerprint(),
        cert.not_before.date(),
        cert.not_after.date()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_dir::TestDir;
    use crate::tls::CertificateAuthority;

    #[test]
    fn init_output_is_only_comments_and_exports() {
        let tmp = TestDir::new("ca-report");
        let dir = CaDir::new(tmp.path());
        let (ca, created) =
            CertificateAuthority::init(&dir, time::OffsetDateTime::now_utc()).unwrap();
        let text = init_report(&dir, ca.certificate(), created, Some(0o755), 2);
        assert!(
            text.lines()
                .all(|l| l.starts_with('#') || l.starts_with("export ")),
            "{text}"
        );
        assert!(text.contains(&ca.certificate().fingerprint()));
        assert!(text.contains("created a new CA"));
        assert!(text.contains("mode 0755; it is 0700 now"), "{text}");
        let shown = show_report(&dir, ca.certificate());
        assert!(shown.contains(&format!("certificate: {}\n", dir.cert_path().display())));
        assert!(shown.contains("SHA-256 fingerprint: "));
    }
}
