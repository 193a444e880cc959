//! Built-in document parsers and the sandbox that runs them.
//!
//! Main types: [`ParsedDocument`] (pages of Markdown-flavoured text, 1-based page numbers),
//! [`ParseError`] (each variant maps to a stable [`ErrorCode`]), [`sniff`] (the media type from the
//! bytes, never from the filename), [`parse`] (in-process parsing of one document) and [`sandbox`]
//! (runs [`parse`] in a child process bounded in time and memory, so a parser that panics, loops
//! or balloons fails its own job, not the worker).
//!
//! Key design choice: every parser ends in the same text normaliser ([`normalize`]), so the chunker
//! sees one dialect whatever the source: headings as `#` lines, paragraphs separated by exactly one
//! blank line, single spaces, no trailing spaces, no control characters. [`parse`] trusts nothing
//! the caller says about the bytes: it sniffs them again and refuses a mismatch.
//!
//! Untrusted input is bounded everywhere it can inflate: PDF streams and page counts, DOCX entry
//! counts and inflated bytes (counted while streaming, never from declared sizes), XML depth and any
//! `<!DOCTYPE` (rejected outright, so no entity can ever be expanded), HTML nesting depth. What a
//! limit cannot catch (stack overflows in a dependency, infinite loops) is the sandbox's job.

#![forbid(unsafe_code)]

mod docx;
mod html;
pub mod normalize;
mod pdf;
pub mod sandbox;
mod sniff;
mod text;

use navigator_domain::{ErrorCode, MediaType};
use serde::{Deserialize, Serialize};

pub use sandbox::{SandboxLimits, parse_in_sandbox, sandbox_child_main};
pub use sniff::sniff;

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
    /// The message is short and fixed per cause; it never quotes document content.
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
    /// Also used when a document exceeds a size limit (inflated archive bytes, extracted text).
    #[error("parser exceeded its memory limit")]
    ResourceLimit,
    #[error("parser crashed")]
    Crashed,
    /// The sandbox could not be started or waited for (no processes or file descriptors left,
    /// the binary replaced mid-upgrade): the machine's fault, not the document's, so retried.
    #[error("parser sandbox unavailable")]
    SandboxUnavailable,
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
            ParseError::SandboxUnavailable => ErrorCode::IoError,
        }
    }

    pub(crate) fn corrupt(reason: &'static str) -> Self {
        ParseError::Corrupt(reason.to_owned())
    }
}

/// Parses `bytes` as `media` in this process.
///
/// The bytes are sniffed again first: if they do not sniff as a type compatible with `media`
/// (see [`MediaType::compatible_with_declared`]) the result is [`ParseError::Unsupported`]. Every
/// returned page's text is normalised (see [`normalize`]); a document whose pages hold no text at
/// all is [`ParseError::Empty`] (or [`ParseError::NoTextLayer`] for a PDF with pages).
///
/// Runs on the calling thread and may take seconds on large documents; call it from a blocking
/// context, and prefer [`parse_in_sandbox`] for untrusted input, since a malicious document can
/// still make a dependency overflow its stack or spin.
pub fn parse(media: MediaType, bytes: &[u8]) -> Result<ParsedDocument, ParseError> {
    match sniff(bytes) {
        Some(sniffed) if sniffed.compatible_with_declared(media) => {}
        _ => return Err(ParseError::Unsupported),
    }
    let pages = match media {
        MediaType::Pdf => pdf::parse(bytes)?,
        MediaType::Docx => single_page(docx::parse(bytes)?)?,
        MediaType::Html => single_page(html::parse(bytes)?)?,
        MediaType::Markdown => single_page(text::parse_markdown(bytes))?,
        MediaType::Text => single_page(text::parse_text(bytes))?,
    };
    Ok(ParsedDocument {
        media_type: media,
        pages,
    })
}

fn single_page(text: String) -> Result<Vec<ParsedPage>, ParseError> {
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(vec![ParsedPage { number: 1, text }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parse_error_has_a_distinct_code() {
        let all = [
            ParseError::Unsupported,
            ParseError::corrupt("x"),
            ParseError::Encrypted,
            ParseError::Empty,
            ParseError::NoTextLayer,
            ParseError::Timeout,
            ParseError::ResourceLimit,
            ParseError::Crashed,
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(|e| e.code()).collect();
        assert_eq!(codes.len(), all.len());
    }

    #[test]
    fn parse_refuses_bytes_that_do_not_sniff_as_the_requested_type() {
        assert_eq!(
            parse(MediaType::Pdf, b"just some text"),
            Err(ParseError::Unsupported)
        );
        assert_eq!(
            parse(MediaType::Html, b"# a markdown heading\n"),
            Err(ParseError::Unsupported)
        );
        assert_eq!(
            parse(MediaType::Text, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Err(ParseError::Unsupported)
        );
    }

    #[test]
    fn markdown_bytes_may_be_parsed_as_text_and_text_as_markdown() {
        let doc = parse(MediaType::Text, b"# Title\n\nBody").expect("parses");
        assert_eq!(doc.media_type, MediaType::Text);
        let doc = parse(MediaType::Markdown, b"plain words").expect("parses");
        assert_eq!(doc.pages[0].text, "plain words");
    }
}
