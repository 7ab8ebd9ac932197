//! Where a report file of inspect goes: never over one of its inputs (`--html cap.pcapng` would overwrite the evidence), into its folder, made when missing as a capture's is.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::InspectError;

/// `Err` when `output` (written by `flag`) names the same file as one of `inputs` (what each is,
/// and its path: the capture, the `--expect` manifest): the same path, another path to it (`./x`, a symlink) or a hard link (same device
/// and inode). Checked before anything is written, so the input is left as it was.
pub fn refuse_overwriting_inputs(
    output: &Path,
    flag: &'static str,
    inputs: &[(&'static str, &Path)],
) -> Result<(), InspectError> {
    for &(role, input) in inputs {
        if same_file(output, input).unwrap_or(false) {
            return Err(InspectError::OutputIsInput {
                output: output.to_path_buf(),
                flag,
                role,
                input: input.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Writes `text` to `output`, creating its missing folders first (as a capture's are), so
/// `--html reports/run.html` works in a fresh checkout. An error names what failed.
pub fn write_output(output: &Path, text: &str) -> io::Result<()> {
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(output, text)
}

/// True when both paths name one existing file. An output that does not exist yet is no input.
fn same_file(a: &Path, b: &Path) -> io::Result<bool> {
    let (a, b) = match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `faultline inspect cap.pcapng --html cap.pcapng` overwrote the capture with HTML.
    #[test]
    fn an_output_that_is_an_input_is_refused_however_it_is_named() {
        let dir =
            std::env::temp_dir().join(format!("faultline-output-path-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let capture = dir.join("cap.pcapng");
        std::fs::write(&capture, b"capture").expect("write");
        let link = dir.join("link.pcapng");
        let hard = dir.join("hard.pcapng");
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::remove_file(&hard);
        std::os::unix::fs::symlink(&capture, &link).expect("symlink");
        std::fs::hard_link(&capture, &hard).expect("hard link");
        let dotted = dir.join(".").join("cap.pcapng");
        for output in [&capture, &link, &hard, &dotted] {
            let e = refuse_overwriting_inputs(
                output,
                "--html",
                &[("manifest", Path::new("other")), ("capture", &capture)],
            )
            .expect_err("the capture itself");
            assert_eq!(e.exit_code(), 2);
            assert!(
                e.to_string().contains("--html") && e.to_string().contains("is the capture"),
                "{e}"
            );
        }
        assert!(refuse_overwriting_inputs(
            &dir.join("report.html"),
            "--html",
            &[("capture", &capture)]
        )
        .is_ok());
        std::fs::write(dir.join("other.html"), b"x").expect("write");
        assert!(refuse_overwriting_inputs(
            &dir.join("other.html"),
            "--html",
            &[("capture", &capture)]
        )
        .is_ok());
        assert_eq!(std::fs::read(&capture).expect("read"), b"capture");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// User trials: `inspect --html nodir/r.html` failed when the folder was missing.
    #[test]
    fn a_report_goes_into_a_folder_made_for_it() {
        let dir =
            std::env::temp_dir().join(format!("faultline-write-output-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let page = dir.join("nodir").join("deeper").join("r.html");
        write_output(&page, "<p>report</p>").expect("written");
        assert_eq!(
            std::fs::read_to_string(&page).expect("read"),
            "<p>report</p>"
        );
        // A folder that cannot be made (a file is in the way) is an error, not a panic.
        let blocked = dir
            .join("nodir")
            .join("deeper")
            .join("r.html")
            .join("x.html");
        assert!(write_output(&blocked, "x").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
