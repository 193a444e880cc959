//! The sandbox against real children: the crate's `navigator-parse-child` binary, with the test
//! hooks switched on through `/usr/bin/env` (the parent clears the child's environment).

use std::path::Path;
use std::time::Duration;

use navigator_domain::MediaType;
use navigator_parse::sandbox::{
    ENV_TEST_HOOKS, TEST_HOOK_ABORT, TEST_HOOK_BALLOON, TEST_HOOK_LOOP, TEST_HOOK_PANIC,
    TEST_HOOK_STACK_OVERFLOW,
};
use navigator_parse::{ParseError, ParsedDocument, SandboxLimits, parse, parse_in_sandbox};

use crate::support::fixture;

const CHILD: &str = env!("CARGO_BIN_EXE_navigator-parse-child");

async fn sandboxed(media: MediaType, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
    parse_in_sandbox(
        Path::new(CHILD),
        &[],
        media,
        bytes,
        &SandboxLimits::default(),
    )
    .await
}

async fn hooked(marker: &str, limits: SandboxLimits) -> Result<ParsedDocument, ParseError> {
    let hooks = format!("{ENV_TEST_HOOKS}=1");
    parse_in_sandbox(
        Path::new("/usr/bin/env"),
        &[&hooks, CHILD],
        MediaType::Text,
        marker.as_bytes(),
        &limits,
    )
    .await
}

#[tokio::test]
async fn a_normal_document_round_trips_through_the_sandbox_child() {
    let bytes = fixture("simulated_insurance_document.pdf");
    let sandboxed = sandboxed(MediaType::Pdf, &bytes).await;
    assert_eq!(sandboxed, parse(MediaType::Pdf, &bytes));
    assert!(sandboxed.is_ok());
}

#[tokio::test]
async fn a_parse_error_in_the_child_comes_back_as_that_error() {
    assert_eq!(
        sandboxed(MediaType::Pdf, b"not a pdf").await,
        Err(ParseError::Unsupported)
    );
    assert_eq!(
        sandboxed(MediaType::Text, b"   ").await,
        Err(ParseError::Empty)
    );
}

#[tokio::test]
async fn a_panicking_parser_is_reported_as_crashed() {
    assert_eq!(
        hooked(TEST_HOOK_PANIC, SandboxLimits::default()).await,
        Err(ParseError::Crashed)
    );
}

#[tokio::test]
async fn an_aborting_parser_is_reported_as_crashed() {
    assert_eq!(
        hooked(TEST_HOOK_ABORT, SandboxLimits::default()).await,
        Err(ParseError::Crashed)
    );
}

#[tokio::test]
async fn a_stack_overflow_is_reported_as_crashed() {
    assert_eq!(
        hooked(TEST_HOOK_STACK_OVERFLOW, SandboxLimits::default()).await,
        Err(ParseError::Crashed)
    );
}

#[tokio::test]
async fn a_looping_parser_is_killed_and_reported_as_timeout() {
    let limits = SandboxLimits {
        timeout: Duration::from_secs(2),
        ..SandboxLimits::default()
    };
    assert_eq!(
        hooked(TEST_HOOK_LOOP, limits).await,
        Err(ParseError::Timeout)
    );
}

#[tokio::test]
async fn a_ballooning_parser_is_reported_as_resource_limit() {
    let limits = SandboxLimits {
        memory_bytes: 256 * 1024 * 1024,
        ..SandboxLimits::default()
    };
    assert_eq!(
        hooked(TEST_HOOK_BALLOON, limits).await,
        Err(ParseError::ResourceLimit)
    );
}

#[tokio::test]
async fn test_hooks_do_nothing_unless_the_child_environment_enables_them() {
    let doc = sandboxed(MediaType::Text, TEST_HOOK_PANIC.as_bytes())
        .await
        .expect("parses as text");
    assert_eq!(doc.pages[0].text, TEST_HOOK_PANIC);
}

#[tokio::test]
async fn a_program_that_does_not_speak_the_protocol_is_crashed_and_a_missing_one_unavailable() {
    let limits = SandboxLimits::default();
    for program in ["/bin/true", "/bin/false"] {
        let result =
            parse_in_sandbox(Path::new(program), &[], MediaType::Text, b"x", &limits).await;
        assert_eq!(result, Err(ParseError::Crashed), "{program}");
    }
    let missing = parse_in_sandbox(
        Path::new("/nonexistent/child"),
        &[],
        MediaType::Text,
        b"x",
        &limits,
    )
    .await;
    assert_eq!(
        missing,
        Err(ParseError::SandboxUnavailable),
        "a sandbox that cannot start is the machine's fault: retried, not blamed on the document"
    );
    assert!(
        ParseError::SandboxUnavailable.code().retryability()
            == navigator_domain::error_code::Retryability::Transient
    );
}

#[tokio::test]
async fn the_parent_survives_every_misbehaving_child_and_keeps_parsing() {
    let pid = std::process::id();
    let limits = SandboxLimits {
        timeout: Duration::from_secs(2),
        memory_bytes: 256 * 1024 * 1024,
    };
    let (panic, abort, looping, balloon) = tokio::join!(
        hooked(TEST_HOOK_PANIC, limits),
        hooked(TEST_HOOK_ABORT, limits),
        hooked(TEST_HOOK_LOOP, limits),
        hooked(TEST_HOOK_BALLOON, limits),
    );
    assert_eq!(panic, Err(ParseError::Crashed));
    assert_eq!(abort, Err(ParseError::Crashed));
    assert_eq!(looping, Err(ParseError::Timeout));
    assert_eq!(balloon, Err(ParseError::ResourceLimit));
    assert_eq!(std::process::id(), pid);
    let doc = sandboxed(MediaType::Markdown, b"# Still here\n\nParsing works.")
        .await
        .expect("parses");
    assert_eq!(doc.pages[0].text, "# Still here\n\nParsing works.");
}
