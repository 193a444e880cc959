//! One integration-test binary for navigator-parse: sniffing, every parser on generated and
//! fixture documents, and the sandbox against real misbehaving children.

mod docx;
mod html_and_text;
mod pdf;
mod robustness;
mod sandbox;
mod sniff;
mod support;
