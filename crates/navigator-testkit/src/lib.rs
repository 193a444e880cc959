//! Test support for Navigator (a dev-dependency only; nothing here ships in the binary).
//!
//! Main items: [`docs`] — deterministic builders of test documents as bytes (multi-page PDFs with
//! a real text layer, a PDF without one, a password-protected PDF, a corrupt PDF, DOCX, HTML) and
//! the realistic insurance prose they carry ([`docs::insurance_policy_pages`],
//! [`docs::known_passage_pages`]); [`rng::XorShift64`], the tiny seeded RNG behind them.
//!
//! Key design choice: every fixture is generated in pure Rust from a seed, byte for byte the same on
//! every run and machine, so no test depends on Python, LibreOffice or checked-in binaries, and a
//! failing test can always regenerate the exact document it saw.
//!
//! The `make-fixtures OUT_DIR` binary writes the standard fixture set for manual checks and for
//! tests of the real executable:
//!
//! | file | what |
//! |---|---|
//! | `multi-page.pdf` | the 5 [`docs::known_passage_pages`]; only page 3 holds [`docs::KNOWN_PASSAGE`] |
//! | `policy-200.pdf` | `insurance_policy_pages(200, 1)`: ~2 500 chars a page, a marker sentence per page |
//! | `no-text-layer.pdf` | 3 pages with only a drawn rectangle: the "scanned, no text layer" case |
//! | `encrypted.pdf` | RC4 40-bit (standard security handler, R2), user password [`docs::ENCRYPTED_PDF_USER_PASSWORD`] |
//! | `corrupt.pdf` | a `%PDF-1.7` header followed by garbage |
//! | `policy.docx` | the known-passage pages as DOCX, headings as `Heading1`/`Heading2` styles |
//! | `policy.html` | the known-passage pages as HTML sections |
//! | `empty.txt` | 0 bytes |
//!
//! Check them with poppler: `pdftotext -f 3 -l 3 OUT/multi-page.pdf -`,
//! `pdfinfo -upw navigator OUT/encrypted.pdf`, `pdffonts OUT/no-text-layer.pdf`.

#![forbid(unsafe_code)]

pub mod docs;
pub mod rng;
