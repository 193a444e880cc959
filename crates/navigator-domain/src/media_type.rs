//! The document types Navigator parses. The type of a stored document always comes from its
//! bytes (see `navigator_parse::sniff`); a declared type is only checked against it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MediaType {
    #[serde(rename = "application/pdf")]
    Pdf,
    #[serde(rename = "application/vnd.openxmlformats-officedocument.wordprocessingml.document")]
    Docx,
    #[serde(rename = "text/html")]
    Html,
    #[serde(rename = "text/markdown")]
    Markdown,
    #[serde(rename = "text/plain")]
    Text,
}

impl MediaType {
    pub const ALL: [MediaType; 5] = [
        MediaType::Pdf,
        MediaType::Docx,
        MediaType::Html,
        MediaType::Markdown,
        MediaType::Text,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Pdf => "application/pdf",
            MediaType::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            MediaType::Html => "text/html",
            MediaType::Markdown => "text/markdown",
            MediaType::Text => "text/plain",
        }
    }

    /// Parses a MIME type (parameters such as `; charset=utf-8` are ignored, case-insensitive).
    pub fn from_mime(mime: &str) -> Option<Self> {
        let essence = mime.split(';').next()?.trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/pdf" => Some(MediaType::Pdf),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
                Some(MediaType::Docx)
            }
            "text/html" | "application/xhtml+xml" => Some(MediaType::Html),
            "text/markdown" | "text/x-markdown" => Some(MediaType::Markdown),
            "text/plain" => Some(MediaType::Text),
            _ => None,
        }
    }

    /// The type a filename's extension claims, if it names one we know.
    pub fn from_extension(filename: &str) -> Option<Self> {
        let ext = filename.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "pdf" => Some(MediaType::Pdf),
            "docx" => Some(MediaType::Docx),
            "html" | "htm" | "xhtml" => Some(MediaType::Html),
            "md" | "markdown" => Some(MediaType::Markdown),
            "txt" | "text" => Some(MediaType::Text),
            _ => None,
        }
    }

    /// Whether a document sniffed as `self` may be declared as `declared`. Text formats are
    /// loosely told apart by sniffing (a Markdown file is valid text), so they are compatible with
    /// each other; binary formats must match exactly.
    pub fn compatible_with_declared(self, declared: MediaType) -> bool {
        let textual = |m: MediaType| matches!(m, MediaType::Markdown | MediaType::Text);
        self == declared || (textual(self) && textual(declared))
    }
}

impl std::fmt::Display for MediaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_and_extension_parsing_agree_for_every_type() {
        for m in MediaType::ALL {
            assert_eq!(MediaType::from_mime(m.as_str()), Some(m));
        }
        assert_eq!(
            MediaType::from_mime("Text/HTML; charset=utf-8"),
            Some(MediaType::Html)
        );
        assert_eq!(MediaType::from_extension("EOC.PDF"), Some(MediaType::Pdf));
        assert_eq!(MediaType::from_extension("noext"), None);
        assert_eq!(MediaType::from_mime("image/png"), None);
    }

    #[test]
    fn binary_types_must_match_but_text_types_may_mix() {
        assert!(!MediaType::Text.compatible_with_declared(MediaType::Pdf));
        assert!(MediaType::Markdown.compatible_with_declared(MediaType::Text));
        assert!(!MediaType::Html.compatible_with_declared(MediaType::Docx));
    }
}
