//! Real clients installed by their `tests/install-*.sh` script into a venv under `target/` on
//! first use. A failed install is an error the caller turns into a failing test, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::daemon::run_bounded;
use super::temp_dir::TempDir;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Runs `tests/{script}` with the venv directory in `env_var` (its value if set, relative to the
/// repository unless absolute, else `target/{default_dir}`), bounded by `limit`; returns the venv
/// directory, or the script's output when it failed.
fn install(
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

/// A venv of real clients, installed once per test process by the first test that asks.
pub struct Tool {
    script: &'static str,
    env_var: &'static str,
    default_dir: &'static str,
    /// What the tests need from it, for the failure message.
    needs: &'static str,
    limit: Duration,
    installed: OnceLock<Result<PathBuf, String>>,
}

impl Tool {
    /// The venv `tests/{script}` makes (see [`install`]); `needs` names what it holds.
    pub const fn new(
        script: &'static str,
        env_var: &'static str,
        default_dir: &'static str,
        needs: &'static str,
        limit: Duration,
    ) -> Tool {
        Tool {
            script,
            env_var,
            default_dir,
            needs,
            limit,
            installed: OnceLock::new(),
        }
    }

    /// The venv's directory, installing it on first use; a failed install fails the test that
    /// asked (never a skip).
    pub fn venv(&'static self) -> &'static Path {
        let installed = self
            .installed
            .get_or_init(|| install(self.script, self.env_var, self.default_dir, self.limit));
        match installed {
            Ok(venv) => venv,
            Err(why) => panic!(
                "{} required (make test installs them), and installing failed: {why}\nfix it, then: bash tests/{}",
                self.needs, self.script
            ),
        }
    }
}
