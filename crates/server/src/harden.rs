//! Keeps secrets out of core dumps: `dci serve` holds the master key, registry credentials and
//! the admin-token digest in memory, and a core file (or a debugger attached by another process
//! of the same user) would copy them to disk.
//!
//! [`harden_process`] sets `RLIMIT_CORE` to 0 (soft and hard, so it cannot be raised again) and,
//! on Linux, `PR_SET_DUMPABLE` to 0, which also stops same-user `ptrace` and makes
//! `/proc/<pid>/` (`environ`, `mem`, …) readable by root only. Set [`ALLOW_CORE_DUMPS_ENV`] to `1`
//! to keep core dumps (debugging a crash).
//!
//! Uses `rustix`'s safe wrappers, so the crate stays `unsafe_code = "forbid"`.

/// Environment variable: `1` (or `true`, `yes`) keeps core dumps enabled.
pub const ALLOW_CORE_DUMPS_ENV: &str = "DCI_ALLOW_CORE_DUMPS";

/// What [`harden_process`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreDumps {
    /// Core dumps are off and the process is not dumpable.
    Disabled,
    /// Left as they were because the caller (or [`ALLOW_CORE_DUMPS_ENV`]) asked for it.
    AllowedByRequest,
    /// This platform has no way to turn them off here (not Unix).
    Unsupported,
}

/// Why core dumps could not be turned off.
#[derive(Debug, thiserror::Error)]
pub enum HardenError {
    /// `setrlimit(RLIMIT_CORE, 0)` failed.
    #[error(
        "could not set the core-dump size limit to 0: {0}; run with `ulimit -c 0`, or set {ALLOW_CORE_DUMPS_ENV}=1 to keep core dumps"
    )]
    CoreLimit(#[source] std::io::Error),
    /// `prctl(PR_SET_DUMPABLE, 0)` failed.
    #[error(
        "could not mark the process non-dumpable: {0}; set {ALLOW_CORE_DUMPS_ENV}=1 to keep core dumps"
    )]
    Dumpable(#[source] std::io::Error),
}

/// Turns core dumps off for this process unless [`ALLOW_CORE_DUMPS_ENV`] asks to keep them.
/// Call it first thing at start-up, before secrets are loaded.
pub fn harden_process() -> Result<CoreDumps, HardenError> {
    let allow = std::env::var(ALLOW_CORE_DUMPS_ENV)
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
    harden_process_with(allow)
}

/// [`harden_process`] with the choice already made (a front end that resolves the setting from
/// its own flag, environment and configuration file): `allow_core_dumps` keeps them.
pub fn harden_process_with(allow_core_dumps: bool) -> Result<CoreDumps, HardenError> {
    if allow_core_dumps {
        tracing::warn!("allow_core_dumps is on: core dumps stay enabled and may contain secrets");
        return Ok(CoreDumps::AllowedByRequest);
    }
    disable_core_dumps()
}

/// Turns core dumps off, whatever the environment says.
#[cfg(unix)]
pub fn disable_core_dumps() -> Result<CoreDumps, HardenError> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(|e| HardenError::CoreLimit(e.into()))?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(|e| HardenError::Dumpable(e.into()))?;
    Ok(CoreDumps::Disabled)
}

/// Turns core dumps off, whatever the environment says.
#[cfg(not(unix))]
pub fn disable_core_dumps() -> Result<CoreDumps, HardenError> {
    Ok(CoreDumps::Unsupported)
}
