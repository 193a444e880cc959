//! Deterministic builders of test documents, as bytes, plus the prose they carry.
//!
//! Every function here is pure: the same arguments give the same bytes on every run.

mod crypto;
mod docx;
mod html;
mod pdf;
mod prose;

pub use docx::docx;
pub use html::html;
pub use pdf::{ENCRYPTED_PDF_USER_PASSWORD, corrupt_pdf, encrypted_pdf, pdf, pdf_without_text};
pub use prose::{
    KNOWN_PASSAGE, KNOWN_PASSAGE_PAGE, insurance_policy_pages, known_passage_pages,
    markdown_paragraphs, markdown_sections, marker_sentence, marker_word,
};
