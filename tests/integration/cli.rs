//! The real binary: exit codes, `check`, `run` flags and summaries.
