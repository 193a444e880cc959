//! Runs [`parse`](crate::parse) in a child process bounded in time and memory (security reference
//! §9.2): a parser that panics, aborts, overflows its stack, loops or balloons fails only its own
//! job, with a classified [`ParseError`], and the worker process carries on.
//!
//! Protocol (parent → child): the parent spawns `program args...` with an empty environment except
//! [`ENV_MEDIA`] (the MIME type to parse as), [`ENV_MEMORY_BYTES`] and [`ENV_CPU_SECONDS`] (plus
//! `RAYON_NUM_THREADS`/`MALLOC_ARENA_MAX`, which keep the child's address space small); the
//! document's bytes arrive on stdin. The child ([`sandbox_child_main`]) caps its own address space
//! (`RLIMIT_AS`), CPU time (`RLIMIT_CPU`), core dumps and file size, parses inside `catch_unwind`,
//! and writes one JSON `Result<ParsedDocument, ParseError>` to stdout. The parent enforces the wall
//! clock, bounds what it reads back, and classifies an abnormal exit:
//!
//! - wall clock exceeded (or `SIGXCPU`) → [`ParseError::Timeout`], after killing the child;
//! - stdout over [`MAX_RESULT_BYTES`], an allocation-failure abort on stderr, or death by `SIGKILL`
//!   or `SIGSEGV` (what hitting `RLIMIT_AS` looks like) → [`ParseError::ResourceLimit`];
//! - anything else (panic, abort, stack overflow, garbage on stdout) → [`ParseError::Crashed`].
//!
//! The child's stderr is read (bounded) only to classify the failure; it is never logged, because
//! a parser's panic message may quote document text.
//!
//! The child entry point is reachable two ways: this crate's `navigator-parse-child` binary (used
//! by the tests), and the main binary's hidden `navigator __parse-sandbox` subcommand, for which
//! the worker passes `program = current_exe()` and `args = ["__parse-sandbox"]`. That subcommand
//! must call [`sandbox_child_main`] before starting a runtime or loading configuration (the child
//! has an empty environment) and exit with its return value.
//!
//! Test hooks: when the child's environment has [`ENV_TEST_HOOKS`]` = 1`, a plain-text document
//! whose whole content is one of the `__navigator_test_*__` markers (see [`TEST_HOOK_PANIC`] and
//! friends) makes the child misbehave on purpose, so the sandbox is tested against real panics,
//! aborts, stack overflows, loops and allocation storms. The parent never passes this variable
//! on; tests set it by running the child through `/usr/bin/env NAVIGATOR_PARSE_TEST_HOOKS=1 ...`.
//! Production never sets it.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use navigator_domain::MediaType;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::{ParseError, ParsedDocument};

/// Media type to parse as (a MIME type, e.g. `application/pdf`).
pub const ENV_MEDIA: &str = "NAVIGATOR_PARSE_MEDIA";
/// Address-space limit the child sets on itself, in bytes.
pub const ENV_MEMORY_BYTES: &str = "NAVIGATOR_PARSE_MEMORY_BYTES";
/// CPU-time limit the child sets on itself, in whole seconds.
pub const ENV_CPU_SECONDS: &str = "NAVIGATOR_PARSE_CPU_SECONDS";
/// Tests only: `1` enables the misbehaviour markers below in the child.
pub const ENV_TEST_HOOKS: &str = "NAVIGATOR_PARSE_TEST_HOOKS";

pub const TEST_HOOK_PANIC: &str = "__navigator_test_panic__";
pub const TEST_HOOK_LOOP: &str = "__navigator_test_loop__";
pub const TEST_HOOK_BALLOON: &str = "__navigator_test_balloon__";
pub const TEST_HOOK_ABORT: &str = "__navigator_test_abort__";
pub const TEST_HOOK_STACK_OVERFLOW: &str = "__navigator_test_stack_overflow__";

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_MEMORY_BYTES: u64 = 1024 * 1024 * 1024;
/// Largest result the parent reads back from the child.
pub const MAX_RESULT_BYTES: usize = 512 * 1024 * 1024;
/// How much of the child's stderr is kept for classification; the rest is drained and dropped.
const MAX_STDERR_BYTES: usize = 64 * 1024;
/// Worker threads (lopdf loads objects on a rayon pool) and glibc malloc arenas in the child.
const CHILD_THREADS: &str = "2";
/// The CPU limit leaves the wall-clock timeout to fire first; it only catches a child that
/// outlives its parent.
const CPU_GRACE_SECONDS: u64 = 2;

/// Limits for one sandboxed parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Wall-clock limit, enforced by the parent (which kills the child).
    pub timeout: Duration,
    /// Address-space limit (`RLIMIT_AS`) the child sets on itself.
    pub memory_bytes: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            timeout: DEFAULT_TIMEOUT,
            memory_bytes: DEFAULT_MEMORY_BYTES,
        }
    }
}

/// Parses `bytes` as `media` in a child process `program args...` that runs
/// [`sandbox_child_main`], within `limits`.
///
/// Errors: whatever the child's [`parse`](crate::parse) returned, or [`ParseError::Timeout`],
/// [`ParseError::ResourceLimit`] or [`ParseError::Crashed`] as classified in the module docs. A
/// child that cannot be spawned is reported as [`ParseError::SandboxUnavailable`] (and logged).
///
/// Cancellation safe: dropping the future kills the child (`kill_on_drop`).
pub async fn parse_in_sandbox(
    program: &Path,
    args: &[&str],
    media: MediaType,
    bytes: &[u8],
    limits: &SandboxLimits,
) -> Result<ParsedDocument, ParseError> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env_clear()
        .env(ENV_MEDIA, media.as_str())
        .env(ENV_MEMORY_BYTES, limits.memory_bytes.to_string())
        .env(ENV_CPU_SECONDS, cpu_seconds(limits.timeout).to_string())
        // Few threads and malloc arenas: each reserves address space that counts against
        // RLIMIT_AS, and one job needs little parallelism (the worker runs jobs side by side).
        .env("RAYON_NUM_THREADS", CHILD_THREADS)
        .env("MALLOC_ARENA_MAX", CHILD_THREADS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| {
            tracing::error!(%error, "failed to spawn parser sandbox");
            ParseError::SandboxUnavailable
        })?;

    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let exchange = async {
        let write = async {
            if let Some(mut stdin) = stdin {
                // A child that dies early closes the pipe; its exit status tells the story.
                let _ = stdin.write_all(bytes).await;
                let _ = stdin.shutdown().await;
            }
        };
        let ((), output, diagnostics, status) = tokio::join!(
            write,
            read_bounded(stdout, MAX_RESULT_BYTES),
            read_head(stderr, MAX_STDERR_BYTES),
            child.wait(),
        );
        (output, diagnostics, status)
    };

    let (output, diagnostics, status) = match tokio::time::timeout(limits.timeout, exchange).await {
        Ok(finished) => finished,
        Err(_elapsed) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            tracing::warn!(media = %media, "parser sandbox timed out");
            return Err(ParseError::Timeout);
        }
    };
    let status = status.map_err(|error| {
        tracing::error!(%error, "failed to wait for parser sandbox");
        ParseError::SandboxUnavailable
    })?;
    let Some(output) = output else {
        tracing::warn!(media = %media, "parser sandbox result exceeded its size limit");
        return Err(ParseError::ResourceLimit);
    };
    if status.success() {
        return serde_json::from_slice::<Result<ParsedDocument, ParseError>>(&output)
            .unwrap_or_else(|_| {
                tracing::warn!(media = %media, "parser sandbox wrote an unreadable result");
                Err(ParseError::Crashed)
            });
    }
    let error = classify_failure(status, &diagnostics);
    tracing::warn!(media = %media, exit = %status, error = %error.code(), "parser sandbox failed");
    Err(error)
}

fn cpu_seconds(timeout: Duration) -> u64 {
    timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0) + CPU_GRACE_SECONDS
}

/// Classifies a child that did not exit cleanly. `stderr` is only searched, never logged.
fn classify_failure(status: ExitStatus, stderr: &[u8]) -> ParseError {
    use std::os::unix::process::ExitStatusExt;
    const SIGKILL: i32 = 9;
    const SIGSEGV: i32 = 11;
    const SIGXCPU: i32 = 24;

    let mentions = |needle: &[u8]| stderr.windows(needle.len()).any(|w| w == needle);
    if mentions(b"memory allocation of") || mentions(b"out of memory") {
        return ParseError::ResourceLimit;
    }
    match status.signal() {
        Some(SIGKILL | SIGSEGV) => ParseError::ResourceLimit,
        Some(SIGXCPU) => ParseError::Timeout,
        _ => ParseError::Crashed,
    }
}

/// Reads everything, or `None` once more than `max` bytes arrive (the pipe is then dropped, so a
/// child still writing dies of `EPIPE`).
async fn read_bounded<R: AsyncRead + Unpin>(reader: Option<R>, max: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    if let Some(reader) = reader {
        let _ = reader.take(max as u64 + 1).read_to_end(&mut out).await;
    }
    (out.len() <= max).then_some(out)
}

/// Keeps the first `max` bytes and drains the rest, so the child never blocks on a full pipe.
async fn read_head<R: AsyncRead + Unpin>(reader: Option<R>, max: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut reader) = reader else {
        return kept;
    };
    let mut chunk = vec![0u8; 8192];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = max - kept.len();
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
    kept
}

/// The child side of [`parse_in_sandbox`]: limits itself, reads the document from stdin, parses
/// it, writes the JSON result to stdout and returns the process exit code (0 when a result, even
/// an error result, was written).
///
/// Call it first thing in the child's `main` (no runtime, no configuration) and exit with its
/// return value.
pub fn sandbox_child_main() -> i32 {
    // The default hook prints the panic message, which may quote document text.
    std::panic::set_hook(Box::new(|_| {
        let _ = writeln!(std::io::stderr(), "navigator-parse-child: parser panicked");
    }));

    let Some(media) = std::env::var(ENV_MEDIA)
        .ok()
        .and_then(|m| MediaType::from_mime(&m))
    else {
        let _ = writeln!(
            std::io::stderr(),
            "navigator-parse-child: missing or unknown {ENV_MEDIA}"
        );
        return 2;
    };
    let memory_bytes = env_u64(ENV_MEMORY_BYTES).unwrap_or(DEFAULT_MEMORY_BYTES);
    let cpu_seconds =
        env_u64(ENV_CPU_SECONDS).unwrap_or(DEFAULT_TIMEOUT.as_secs() + CPU_GRACE_SECONDS);
    if let Err(error) = limit_self(memory_bytes, cpu_seconds) {
        // Fail closed: an unbounded parser is exactly what the sandbox exists to prevent.
        let _ = writeln!(
            std::io::stderr(),
            "navigator-parse-child: cannot set limits: {error}"
        );
        return 3;
    }

    let mut input = Vec::new();
    if std::io::stdin()
        .lock()
        .take(memory_bytes)
        .read_to_end(&mut input)
        .is_err()
    {
        let _ = writeln!(
            std::io::stderr(),
            "navigator-parse-child: cannot read input"
        );
        return 4;
    }
    let hooks = std::env::var(ENV_TEST_HOOKS).is_ok_and(|v| v == "1");

    let result = std::panic::catch_unwind(|| {
        if hooks && media == MediaType::Text {
            run_test_hook(input.trim_ascii());
        }
        crate::parse(media, &input)
    })
    .unwrap_or(Err(ParseError::Crashed));

    let mut stdout = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut stdout, &result)
        .map_err(std::io::Error::from)
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => 0,
        Err(_) => 5,
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

fn limit_self(memory_bytes: u64, cpu_seconds: u64) -> std::io::Result<()> {
    use rlimit::Resource;
    // Never try to raise a hard limit someone above us already lowered.
    let set = |resource: Resource, soft: u64, hard: u64| -> std::io::Result<()> {
        let (_, current_hard) = rlimit::getrlimit(resource)?;
        rlimit::setrlimit(resource, soft.min(current_hard), hard.min(current_hard))
    };
    set(Resource::AS, memory_bytes, memory_bytes)?;
    set(Resource::CPU, cpu_seconds, cpu_seconds + 1)?;
    set(Resource::CORE, 0, 0)?;
    set(
        Resource::FSIZE,
        MAX_RESULT_BYTES as u64,
        MAX_RESULT_BYTES as u64,
    )?;
    Ok(())
}

/// Deliberate misbehaviour for the sandbox tests; see the module docs.
fn run_test_hook(content: &[u8]) {
    if content == TEST_HOOK_PANIC.as_bytes() {
        panic!("test hook: panic");
    } else if content == TEST_HOOK_LOOP.as_bytes() {
        let mut spins = 0u64;
        loop {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    } else if content == TEST_HOOK_BALLOON.as_bytes() {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Filled, not just reserved, so the pages are really used.
            hoard.push(vec![0xA5; 16 * 1024 * 1024]);
            std::hint::black_box(&hoard);
        }
    } else if content == TEST_HOOK_ABORT.as_bytes() {
        std::process::abort();
    } else if content == TEST_HOOK_STACK_OVERFLOW.as_bytes() {
        std::hint::black_box(recurse(std::hint::black_box(1)));
    }
}

fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 512]);
    if std::hint::black_box(depth) == 0 {
        return frame[0];
    }
    recurse(depth + 1).wrapping_add(frame[depth as usize % 512])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_limit_rounds_the_timeout_up_and_adds_grace() {
        assert_eq!(cpu_seconds(Duration::from_secs(2)), 2 + CPU_GRACE_SECONDS);
        assert_eq!(
            cpu_seconds(Duration::from_millis(2500)),
            3 + CPU_GRACE_SECONDS
        );
    }

    #[test]
    fn default_limits_are_a_minute_and_a_gibibyte() {
        let limits = SandboxLimits::default();
        assert_eq!(limits.timeout, Duration::from_secs(60));
        assert_eq!(limits.memory_bytes, 1 << 30);
    }
}
