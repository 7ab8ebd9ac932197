//! Expands capture path templates such as `captures/{name}-{time}.pcapng`.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// How many numbered names [`claim_unused`] tries before it gives up.
const MAX_SUFFIX: u32 = 10_000;

/// Expands `{name}`, `{time}` and `{pid}` in a capture path template, so every run gets its own file
/// and captures sort by start time in a directory listing.
///
/// `{time}` is UTC in the basic ISO 8601 form `20261122T110512Z` (no `:` so the name is valid on every
/// file system). Unknown `{...}` placeholders are left as written.
///
/// The name (a scenario file's `name`, or a proxy's name under `faultline serve`) is made safe
/// first, see [`safe_name`]: whatever it holds, a capture stays in the folder the template names.
pub fn expand_path_template(template: &str, name: &str, start: SystemTime, pid: u32) -> PathBuf {
    let safe_name = safe_name(name);
    PathBuf::from(
        template
            .replace("{name}", &safe_name)
            .replace("{time}", &utc_stamp(start))
            .replace("{pid}", &pid.to_string()),
    )
}

/// The folder a capture path template writes into, up to its first placeholder (`None`: the
/// current folder, or a placeholder from the start).
fn fixed_folder(template: &str) -> Option<&Path> {
    let mut dir = Path::new(template).parent()?;
    while dir.to_string_lossy().contains('{') {
        dir = dir.parent()?;
    }
    (!dir.as_os_str().is_empty()).then_some(dir)
}

/// Creates the folder a capture path template writes into, up to its first placeholder (a
/// folder named by `{name}` is made per run): a template no capture could be written under is
/// refused before any run starts.
pub fn prepare_template_folder(template: &str) -> io::Result<()> {
    let Some(dir) = fixed_folder(template) else {
        return Ok(());
    };
    std::fs::create_dir_all(dir).map_err(|e| io::Error::new(e.kind(), cannot_create(dir, &e)))
}

/// Why `dir` cannot be made, naming the file in the way (`out/x.pcapng` with `out` a file said
/// only "File exists").
fn cannot_create(dir: &Path, e: &io::Error) -> String {
    let blocking = dir
        .ancestors()
        .find(|d| !d.as_os_str().is_empty() && d.exists() && !d.is_dir());
    match blocking {
        Some(file) => format!(
            "cannot create directory {}: {} is a file, not a folder",
            dir.display(),
            file.display()
        ),
        None => format!("cannot create directory {}: {e}", dir.display()),
    }
}

/// What [`prepare_template_folder`] would meet, without leaving a trace: `faultline check` says
/// now what `run` would refuse at start (a folder that is a file, one that cannot be made, a
/// template that names a folder). The folders it had to make to find out are removed again.
pub fn probe_template_folder(template: &str, name: &str) -> Result<(), String> {
    // `{name}` is known before the run: a folder it names is checked too (a trial's
    // `out/{name}/…` with a file `out/NAME` passed check).
    let template = template.replace("{name}", &safe_name(name));
    if !template.contains('{') && Path::new(&template).is_dir() {
        return Err(format!("{template} is a folder: name a file in it"));
    }
    let Some(dir) = fixed_folder(&template) else {
        return Ok(());
    };
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    let made = std::fs::create_dir_all(dir)
        .map_err(|e| cannot_create(dir, &e))
        .and_then(|()| {
            // A folder that exists but takes no file (`/sys`, read-only): one made and removed.
            let probe = dir.join(format!(".faultline-check-{}", std::process::id()));
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&probe)
                .map(|_| {
                    let _ = std::fs::remove_file(&probe);
                })
                .map_err(|e| format!("cannot write in {}: {e}", dir.display()))
        });
    for folder in missing {
        let _ = std::fs::remove_dir(folder);
    }
    made
}

/// Claims the capture file `path` or, when a file is already there (a run restarted within the
/// same second of `{time}`, or two names that [`safe_name`] makes alike), the first free one of
/// `path` with `-2`, `-3`, … before its extension: a new run never overwrites an earlier
/// capture. The file is created empty with `create_new`, so two runs racing for one name get
/// two files; the capture writer then opens it. The folder is made first; when it cannot be
/// made or written, `path` is returned as it is and opening it reports why.
///
/// Errors only when all [`MAX_SUFFIX`] names are taken.
pub fn claim_unused(path: &Path) -> io::Result<PathBuf> {
    // A missing folder is made first: without it every run started in the same second of a
    // fresh checkout (a CI trial's 4 parallel jobs on `captures/{name}-{time}.pcapng`) found
    // nothing to claim and all wrote one file.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    for n in 1..=MAX_SUFFIX {
        let candidate = if n == 1 {
            path.to_path_buf()
        } else {
            numbered(path, n)
        };
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(_) => return Ok(candidate),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(_) => return Ok(path.to_path_buf()),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "{} and {MAX_SUFFIX} numbered variants of it already exist",
            path.display()
        ),
    ))
}

/// The file a `faultline run` writes its capture to, and whether it replaces an earlier capture.
///
/// A name the template makes per run (`{time}`, `{pid}`) is claimed as [`claim_unused`] does: two
/// runs started in the same second (a CI matrix, a loop of short runs) get two files, where they
/// shared one and the first run's `--inspect` read the second run's traffic. A fixed name is the
/// user's choice: an earlier capture there is replaced, as `tcpdump -w` does, and the caller says
/// so; a file that is no capture (the scenario, an `--expect` manifest, anything else) is refused
/// before the run, where a trial's `--capture victim.toml` overwrote the scenario it ran.
pub fn claim_for_run(template: &str, path: &Path) -> Result<(PathBuf, bool), String> {
    if template.contains("{time}") || template.contains("{pid}") {
        return claim_unused(path)
            .map(|claimed| (claimed, false))
            .map_err(|e| e.to_string());
    }
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok((path.to_path_buf(), false));
    };
    if !meta.is_file() {
        // A folder or a device: opening it says what is wrong.
        return Ok((path.to_path_buf(), false));
    }
    if being_written(path) {
        return Err(format!(
            "capture {}: another faultline run is writing it now: name another file, or put {{time}} or {{pid}} in the name for one file per run",
            path.display()
        ));
    }
    if meta.len() == 0 || holds_a_faultline_capture(path) {
        return Ok((path.to_path_buf(), meta.len() > 0));
    }
    Err(format!(
        "capture {}: the file exists and is no faultline capture; faultline replaces only an earlier capture of its own: name a new file, or put {{time}} in the name for one file per run",
        path.display()
    ))
}

/// Whether `path` is a capture faultline wrote (its pcapng section header names faultline, or a
/// classic pcap, which has no place for a name), maybe cut short: never someone's tcpdump.
fn holds_a_faultline_capture(path: &Path) -> bool {
    use std::io::Read;
    let mut head = Vec::with_capacity(4096);
    let read = std::fs::File::open(path).and_then(|f| f.take(4096).read_to_end(&mut head));
    if read.is_err() || head.len() < 4 {
        return false;
    }
    match u32::from_le_bytes([head[0], head[1], head[2], head[3]]) {
        0x0A0D_0D0A => head.windows(10).any(|w| w == b"faultline "),
        0xA1B2_C3D4 | 0xD4C3_B2A1 | 0xA1B2_3C4D | 0x4D3C_B2A1 => true,
        _ => false,
    }
}

/// Takes the lock that says a run writes `file` (an exclusive `flock`, held as long as the file
/// stays open, released by the kernel when the process dies): a second run naming the same fixed
/// capture while the first still writes it would have interleaved both into one damaged file.
/// False when another process holds it.
pub fn lock_for_writing(file: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own for the duration of the call; no memory is touched.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Whether another process holds the writing lock of the file at `path`.
fn being_written(path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    if lock_for_writing(&file) {
        // SAFETY: as above; releases the lock just taken (closing the file would too).
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        return false;
    }
    true
}

/// `dir/stem-N.ext` for `dir/stem.ext` (`dir/stem-N` without an extension).
fn numbered(path: &Path, n: u32) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{n}"),
    };
    path.with_file_name(name)
}

/// `name` as one piece of a file name: path separators (`/`, `\\`) and control characters become
/// `_`, and so does a leading `.`, so the name can neither climb out of its folder (`..`, even
/// with text of the template around it: the piece it fills then holds a `_`), nor hide the file,
/// nor put a line break in it. `dvc/upload` becomes `dvc_upload`, `../../x` becomes `_._.._x`.
pub fn safe_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .enumerate()
        .map(|(i, c)| match c {
            '/' | '\\' => '_',
            '.' if i == 0 => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    if safe.len() <= MAX_NAME_BYTES {
        return safe;
    }
    // A file name holds 255 bytes and the template adds a time and an extension: a long name
    // (a serve proxy's may have 256 bytes) keeps its start and a hash of the whole, so two
    // long names alike at the start still get files of their own.
    let mut cut = MAX_NAME_BYTES - 9;
    while !safe.is_char_boundary(cut) {
        cut -= 1;
    }
    let hash = crate::seed::key_of(name.as_bytes());
    format!("{}-{:08x}", &safe[..cut], hash as u32)
}

/// Bytes of a name [`safe_name`] keeps in a file name.
const MAX_NAME_BYTES: usize = 120;

/// `YYYYMMDDTHHMMSSZ` for `at`; times before 1970 are written as the epoch.
fn utc_stamp(at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = crate::utc::civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `check` finds what `run` refuses (a trial: `check` said ok, `run` exited 2) and leaves
    /// no folder behind.
    #[test]
    fn a_probe_finds_a_folder_that_cannot_be_made_and_leaves_nothing() {
        let root = std::env::temp_dir().join(format!("faultline-probe-{}", std::process::id()));
        std::fs::create_dir_all(&root).expect("temp dir");
        let file = root.join("afile");
        std::fs::write(&file, b"").expect("a file");
        let under_file = format!("{}/x/{{name}}.pcapng", file.display());
        let error = probe_template_folder(&under_file, "n").unwrap_err();
        assert!(error.starts_with("cannot create directory"), "{error}");
        let folder = root.display().to_string();
        assert!(probe_template_folder(&folder, "n")
            .unwrap_err()
            .contains("is a folder"));
        // `{name}` is known: a file where its folder goes is found.
        std::fs::write(root.join("capq"), b"").expect("a file");
        let named = format!("{}/{{name}}/{{time}}.pcapng", root.display());
        assert!(probe_template_folder(&named, "capq").is_err());
        assert!(probe_template_folder("/sys/x.pcapng", "n")
            .unwrap_err()
            .starts_with("cannot write in /sys"));
        let fresh = format!("{}/new/deeper/{{name}}-{{time}}.pcapng", root.display());
        assert_eq!(probe_template_folder(&fresh, "n"), Ok(()));
        assert!(!root.join("new").exists(), "the probe leaves no folder");
        let _ = std::fs::remove_dir_all(&root);
    }

    /// A serve trial's 250-byte proxy name made a capture name over 255 bytes ("File name too
    /// long"): a long name keeps its start and a hash, and distinct names stay distinct.
    #[test]
    fn a_long_name_fits_a_file_name_and_stays_distinct() {
        let a = format!("{}a", "b".repeat(249));
        let b = format!("{}c", "b".repeat(249));
        let (sa, sb) = (safe_name(&a), safe_name(&b));
        assert!(sa.len() <= MAX_NAME_BYTES && sb.len() <= MAX_NAME_BYTES);
        assert!(sa.starts_with("bbbb"), "{sa}");
        assert_ne!(sa, sb);
        let wide = "é".repeat(100);
        assert!(safe_name(&wide).len() <= MAX_NAME_BYTES);
        assert_eq!(safe_name("short"), "short");
    }
    use std::time::Duration;

    #[test]
    fn expands_every_placeholder() {
        // 2026-11-22T11:05:12Z
        let at = UNIX_EPOCH + Duration::from_secs(1_795_345_512);
        let path =
            expand_path_template("captures/{name}-{time}-{pid}.pcapng", "dvc/upload", at, 42);
        assert_eq!(
            path,
            PathBuf::from("captures/dvc_upload-20261122T110512Z-42.pcapng")
        );
    }

    #[test]
    fn a_name_cannot_leave_the_folder_of_the_template() {
        let at = UNIX_EPOCH;
        for (name, expect) in [
            ("../../x", "_._.._x"),
            ("..", "_."),
            (".", "_"),
            (".hidden", "_hidden"),
            ("a\\..\\b", "a_.._b"),
            ("line\nbreak\u{7f}", "line_break_"),
            ("a..b", "a..b"),
            ("dvc upload: 1st", "dvc upload: 1st"),
        ] {
            assert_eq!(safe_name(name), expect, "{name:?}");
        }
        for template in [
            "captures/{name}/c.pcapng",
            "captures/{name}.pcapng",
            "captures/.{name}/c",
            "captures/{name}./c",
        ] {
            for name in ["..", ".", "../..", "/", "../x/.."] {
                let path = expand_path_template(template, name, at, 1);
                assert!(
                    path.starts_with("captures")
                        && path.components().all(|c| !matches!(
                            c,
                            std::path::Component::ParentDir | std::path::Component::RootDir
                        )),
                    "{template} with {name:?} gave {}",
                    path.display()
                );
                assert_eq!(
                    path.components().count(),
                    template.split('/').count(),
                    "{}",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn a_claimed_name_is_never_claimed_again() {
        let scratch = crate::store::test_dir::TestDir::new("claim");
        let dir = scratch.path();
        let path = dir.join("sv-a-20261122T110512Z.pcapng");
        std::fs::write(&path, b"an earlier run").expect("write");
        let second = claim_unused(&path).expect("a free name");
        let third = claim_unused(&path).expect("a free name");
        assert_eq!(second, dir.join("sv-a-20261122T110512Z-2.pcapng"));
        assert_eq!(third, dir.join("sv-a-20261122T110512Z-3.pcapng"));
        assert_eq!(std::fs::read(&path).expect("read"), b"an earlier run");
        assert_eq!(numbered(Path::new("caps/x"), 2), PathBuf::from("caps/x-2"));
        // A folder that does not exist yet: nothing to overwrite, the writer creates it.
        let missing = dir.join("not-yet/c.pcap");
        assert_eq!(claim_unused(&missing).expect("as it is"), missing);
    }

    #[test]
    fn a_run_claims_a_new_file_per_run_and_replaces_only_an_earlier_capture() {
        let scratch = crate::store::test_dir::TestDir::new("claim-run");
        let dir = scratch.path();
        // Two runs in the same second of {time}: two files.
        let stamped = dir.join("s-20261130T035837Z.pcapng");
        let template = "captures/{name}-{time}.pcapng";
        let first = claim_for_run(template, &stamped).expect("claimed");
        let second = claim_for_run(template, &stamped).expect("claimed");
        assert_eq!(first, (stamped.clone(), false));
        assert_eq!(second, (dir.join("s-20261130T035837Z-2.pcapng"), false));
        // A fixed name: an earlier capture of faultline's (pcapng naming it, or pcap, even cut
        // short) is replaced; someone else's pcapng is not.
        let fixed = dir.join("out.pcapng");
        let template = fixed.to_string_lossy().into_owned();
        assert_eq!(claim_for_run(&template, &fixed), Ok((fixed.clone(), false)));
        std::fs::write(
            &fixed,
            b"\x0a\x0d\x0d\x0a\x1c\0\0\0faultline 0.1.0; scenario",
        )
        .expect("write");
        assert_eq!(claim_for_run(&template, &fixed), Ok((fixed.clone(), true)));
        // While a run writes it (holds its lock), it is refused.
        let writing = std::fs::File::open(&fixed).expect("open");
        assert!(lock_for_writing(&writing));
        let busy = claim_for_run(&template, &fixed).expect_err("being written");
        assert!(
            busy.contains("another faultline run is writing it"),
            "{busy}"
        );
        drop(writing);
        std::fs::write(&fixed, b"\x0a\x0d\x0d\x0a\x1c\0\0\0Text2pcap").expect("write");
        assert!(
            claim_for_run(&template, &fixed).is_err(),
            "a foreign pcapng"
        );
        std::fs::write(&fixed, [0xd4, 0xc3, 0xb2, 0xa1]).expect("write");
        assert_eq!(claim_for_run(&template, &fixed), Ok((fixed.clone(), true)));
        // Anything else is refused and left alone.
        let scenario = dir.join("victim.toml");
        std::fs::write(&scenario, "name = \"victim\"\n").expect("write");
        let refused = claim_for_run(&scenario.to_string_lossy(), &scenario).expect_err("refused");
        assert!(
            refused.contains("exists and is no faultline capture"),
            "{refused}"
        );
        assert_eq!(
            std::fs::read_to_string(&scenario).expect("read"),
            "name = \"victim\"\n"
        );
    }

    #[test]
    fn utc_stamp_handles_leap_days_and_the_epoch() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_164_799); // 2024-02-28T23:59:59Z
        assert_eq!(utc_stamp(leap + Duration::from_secs(1)), "20240229T000000Z");
        assert_eq!(
            expand_path_template("{nope}", "x", UNIX_EPOCH, 1),
            PathBuf::from("{nope}")
        );
    }
}
