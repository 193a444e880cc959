//! Built-in document parsers and the sandbox that runs them.
//!
//! Main types: [`ParsedDocument`] (pages of Markdown-flavoured text, 1-based page numbers),
//! [`ParseError`] (each variant maps to a stable [`ErrorCode`]), [`sniff`] (the media type from the
//! bytes, never from the filename), and [`sandbox`] (runs a parser in a child process bounded in
//! time and memory, so a parser that panics, loops or balloons fails its own job, not the worker).

#![forbid(unsafe_code)]

use navigator_domain::{ErrorCode, MediaType};
use serde::{Deserialize, Serialize};

/// One page of a parsed document. `text` is Markdown-flavoured: headings the parser recognised are
/// written as `#`-prefixed lines so the chunker can track the heading path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedPage {
    /// 1-based page number (PDF page index + 1; formats without pages have one page).
    pub number: u32,
    pub text: String,
}

/// The parsed artifact stored after the `parse` stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedDocument {
    pub media_type: MediaType,
    pub pages: Vec<ParsedPage>,
}

/// Why a document could not be parsed. Every variant is permanent: the same bytes fail the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ParseError {
    #[error("unsupported media type")]
    Unsupported,
    #[error("corrupt document: {0}")]
    Corrupt(String),
    #[error("encrypted document")]
    Encrypted,
    #[error("empty document")]
    Empty,
    #[error("document has no text layer")]
    NoTextLayer,
    #[error("parser exceeded its time limit")]
    Timeout,
    #[error("parser exceeded its memory limit")]
    ResourceLimit,
    #[error("parser crashed")]
    Crashed,
}

impl ParseError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ParseError::Unsupported => ErrorCode::UnsupportedMediaType,
            ParseError::Corrupt(_) => ErrorCode::CorruptDocument,
            ParseError::Encrypted => ErrorCode::EncryptedDocument,
            ParseError::Empty => ErrorCode::EmptyDocument,
            ParseError::NoTextLayer => ErrorCode::NoTextLayer,
            ParseError::Timeout => ErrorCode::ParserTimeout,
            ParseError::ResourceLimit => ErrorCode::ParserResourceLimit,
            ParseError::Crashed => ErrorCode::ParserCrashed,
        }
    }
}
