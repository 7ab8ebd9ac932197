//! Real clients installed by their `tests/install-*.sh` script into a venv under `target/` on
//! first use. A failed install is an error the caller turns into a failing test, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::daemon::run_bounded;
use super::temp_dir::TempDir;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Runs `tests/{script}` with the venv directory in `env_var` (its value if set, relative to the
/// repository unless absolute, else `target/{default_dir}`), bounded by `limit`; returns the venv
/// directory, or the script's output when it failed.
pub fn install(
    script: &str,
    env_var: &str,
    default_dir: &str,
    limit: Duration,
) -> Result<PathBuf, String> {
    let repo = Path::new(REPO);
    let venv = match std::env::var_os(env_var) {
        Some(dir) => repo.join(dir), // an absolute path replaces `repo`
        None => repo.join("target").join(default_dir),
    };
    let logs = TempDir::new(&format!("install-{default_dir}"));
    let done = run_bounded(
        Command::new("bash")
            .arg(repo.join("tests").join(script))
            .env(env_var, &venv)
            .current_dir(repo),
        logs.path(),
        "install",
        limit,
    );
    println!("$ bash tests/{script}\n{}", done.output());
    if done.status.success() {
        Ok(venv)
    } else {
        Err(format!(
            "tests/{script} exited with {}:\n{}",
            done.status,
            done.output()
        ))
    }
}
