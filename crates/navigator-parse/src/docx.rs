//! DOCX: `word/document.xml` (plus `word/styles.xml` for heading style names) read with `zip` and
//! `quick-xml`, written out as Markdown-flavoured text.
//!
//! Mapping: each `w:p` is a paragraph; heading styles (`Title`, `Heading1`..`Heading6`, any style
//! whose name is "heading N" or that carries an outline level, or a paragraph outline level) become
//! `#`..`######` lines; numbered/bulleted paragraphs become `- ` items; each table row becomes one
//! line with its cells joined by ` | ` (nested tables are flattened into their cell). Text boxes are
//! read once (the `mc:Fallback` copy is skipped); deleted text and field codes are not text.
//!
//! Defences (security reference IN-03/IN-05): at most [`MAX_ZIP_ENTRIES`] entries; inflated bytes
//! are counted while streaming, capped at [`MAX_INFLATED_BYTES`] in total and at a 100:1 ratio per
//! entry past 1 MiB; any `<!DOCTYPE` is rejected, so no entity can ever be defined or expanded;
//! element nesting is capped at [`MAX_XML_DEPTH`].

use std::io::{Cursor, Read};

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use crate::ParseError;
use crate::normalize::normalize_text;
use crate::sniff::MAX_ZIP_ENTRIES;

/// Total bytes inflated from the archive per document.
pub(crate) const MAX_INFLATED_BYTES: u64 = 200 * 1024 * 1024;
/// Entries inflating to more than this must stay within [`MAX_RATIO`].
const RATIO_FLOOR_BYTES: u64 = 1024 * 1024;
const MAX_RATIO: u64 = 100;
pub(crate) const MAX_XML_DEPTH: usize = 256;

pub(crate) fn parse(bytes: &[u8]) -> Result<String, ParseError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|_| ParseError::corrupt("unreadable docx archive"))?;
    if archive.len() > MAX_ZIP_ENTRIES {
        return Err(ParseError::corrupt("docx archive has too many entries"));
    }
    let mut budget = MAX_INFLATED_BYTES;
    let document = read_entry(&mut archive, "word/document.xml", &mut budget)?
        .ok_or_else(|| ParseError::corrupt("docx has no document part"))?;
    let styles = match read_entry(&mut archive, "word/styles.xml", &mut budget)? {
        Some(xml) => heading_styles(&xml)?,
        None => Vec::new(),
    };
    let blocks = document_blocks(&document, &styles)?;
    Ok(normalize_text(&blocks.join("\n\n")))
}

/// Reads one entry, charging its inflated size to `budget` as it streams.
fn read_entry(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    budget: &mut u64,
) -> Result<Option<Vec<u8>>, ParseError> {
    let mut entry = match archive.by_name(name) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(_) => return Err(ParseError::corrupt("unreadable docx entry")),
    };
    let compressed = entry.compressed_size().max(1);
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = entry
            .read(&mut chunk)
            .map_err(|_| ParseError::corrupt("unreadable docx entry"))?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n]);
        let inflated = out.len() as u64;
        if inflated > *budget || (inflated > RATIO_FLOOR_BYTES && inflated / compressed > MAX_RATIO)
        {
            return Err(ParseError::ResourceLimit);
        }
    }
    *budget -= out.len() as u64;
    Ok(Some(out))
}

/// `(style id, heading level)` for every paragraph style that is a heading.
fn heading_styles(xml: &[u8]) -> Result<Vec<(Vec<u8>, u8)>, ParseError> {
    let mut reader = xml_reader(xml);
    let mut depth = 0usize;
    let mut styles = Vec::new();
    let mut current: Option<(Vec<u8>, Option<u8>)> = None;
    loop {
        let event = reader.read_event().map_err(|_| xml_error())?;
        match &event {
            Event::Start(_) => {
                depth += 1;
                if depth > MAX_XML_DEPTH {
                    return Err(ParseError::corrupt("docx xml nesting too deep"));
                }
            }
            Event::End(end) => {
                depth = depth.saturating_sub(1);
                if end.name().as_ref() == b"w:style"
                    && let Some((id, Some(level))) = current.take()
                {
                    styles.push((id, level));
                }
            }
            Event::DocType(_) => return Err(doctype_error()),
            Event::Eof => break,
            _ => {}
        }
        if let Event::Start(e) | Event::Empty(e) = &event {
            match e.name().as_ref() {
                b"w:style" => {
                    current = attr(e, b"w:styleId").map(|id| {
                        let level = level_from_style_id(&id);
                        (id, level)
                    });
                }
                b"w:name" => {
                    if let (Some((_, level)), Some(name)) = (current.as_mut(), attr(e, b"w:val")) {
                        *level = level.or_else(|| level_from_style_name(&name));
                    }
                }
                b"w:outlineLvl" => {
                    if let (Some((_, level)), Some(v)) = (current.as_mut(), attr(e, b"w:val")) {
                        *level = level.or_else(|| level_from_outline(&v));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(styles)
}

#[derive(Default)]
struct Paragraph {
    text: String,
    level: Option<u8>,
    list_item: bool,
}

#[derive(Default)]
struct Table {
    rows: Vec<String>,
    cells: Vec<String>,
    cell: String,
}

fn document_blocks(xml: &[u8], styles: &[(Vec<u8>, u8)]) -> Result<Vec<String>, ParseError> {
    let mut reader = xml_reader(xml);
    let mut depth = 0usize;
    let mut blocks: Vec<String> = Vec::new();
    let mut paragraphs: Vec<Paragraph> = Vec::new();
    let mut tables: Vec<Table> = Vec::new();
    let mut run_depth = 0usize;
    let mut in_text = false;

    loop {
        let event = reader.read_event().map_err(|_| xml_error())?;
        match event {
            Event::Start(ref e) => {
                depth += 1;
                if depth > MAX_XML_DEPTH {
                    return Err(ParseError::corrupt("docx xml nesting too deep"));
                }
                match e.name().as_ref() {
                    b"w:p" => paragraphs.push(Paragraph::default()),
                    b"w:r" => run_depth += 1,
                    b"w:t" => in_text = run_depth > 0,
                    b"w:tbl" => tables.push(Table::default()),
                    b"mc:Fallback" => {
                        // The same content as the `mc:Choice` branch we already read.
                        reader.read_to_end(e.name()).map_err(|_| xml_error())?;
                        depth -= 1;
                    }
                    _ => element(e, styles, run_depth, &mut paragraphs),
                }
            }
            Event::Empty(ref e) => element(e, styles, run_depth, &mut paragraphs),
            Event::End(ref e) => {
                depth = depth.saturating_sub(1);
                match e.name().as_ref() {
                    b"w:t" => in_text = false,
                    b"w:r" => run_depth = run_depth.saturating_sub(1),
                    b"w:p" => {
                        if let Some(p) = paragraphs.pop() {
                            finish_paragraph(p, &mut tables, &mut blocks);
                        }
                    }
                    b"w:tc" => {
                        if let Some(t) = tables.last_mut() {
                            let cell = std::mem::take(&mut t.cell);
                            t.cells.push(cell.trim().to_owned());
                        }
                    }
                    b"w:tr" => {
                        if let Some(t) = tables.last_mut() {
                            let cells = std::mem::take(&mut t.cells);
                            if cells.iter().any(|c| !c.is_empty()) {
                                t.rows.push(cells.join(" | "));
                            }
                        }
                    }
                    b"w:tbl" => {
                        if let Some(t) = tables.pop() {
                            match tables.last_mut() {
                                Some(parent) => push_word(&mut parent.cell, &t.rows.join(" ")),
                                None if !t.rows.is_empty() => blocks.push(t.rows.join("\n")),
                                None => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(ref t) if in_text => {
                let text = t.decode().map_err(|_| xml_error())?;
                if let Some(p) = paragraphs.last_mut() {
                    p.text.push_str(&text);
                }
            }
            Event::CData(ref t) if in_text => {
                let text = t.decode().map_err(|_| xml_error())?;
                if let Some(p) = paragraphs.last_mut() {
                    p.text.push_str(&text);
                }
            }
            Event::GeneralRef(ref r) if in_text => {
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c),
                    Ok(None) => predefined_entity(r.as_ref()),
                    Err(_) => None,
                };
                if let (Some(c), Some(p)) = (c, paragraphs.last_mut()) {
                    p.text.push(c);
                }
            }
            Event::DocType(_) => return Err(doctype_error()),
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(blocks)
}

/// Elements that matter whether written as `<x/>` or `<x>..</x>`: paragraph properties and the
/// in-run characters that are not `w:t` text.
fn element(
    e: &BytesStart<'_>,
    styles: &[(Vec<u8>, u8)],
    run_depth: usize,
    paragraphs: &mut [Paragraph],
) {
    let Some(p) = paragraphs.last_mut() else {
        return;
    };
    match e.name().as_ref() {
        b"w:pStyle" => {
            if let Some(id) = attr(e, b"w:val") {
                p.level = styles
                    .iter()
                    .find(|(s, _)| *s == id)
                    .map(|(_, level)| *level)
                    .or_else(|| level_from_style_id(&id));
            }
        }
        b"w:outlineLvl" => {
            if let Some(v) = attr(e, b"w:val") {
                p.level = p.level.or_else(|| level_from_outline(&v));
            }
        }
        b"w:numPr" => p.list_item = true,
        // Outside runs, `w:tab` is a tab-stop definition, not a character.
        b"w:tab" if run_depth > 0 => p.text.push(' '),
        b"w:br" | b"w:cr" if run_depth > 0 => p.text.push('\n'),
        b"w:noBreakHyphen" if run_depth > 0 => p.text.push('-'),
        _ => {}
    }
}

fn finish_paragraph(p: Paragraph, tables: &mut [Table], blocks: &mut Vec<String>) {
    let text = p.text.trim();
    if text.is_empty() {
        return;
    }
    if let Some(table) = tables.last_mut() {
        push_word(&mut table.cell, &text.replace('\n', " "));
        return;
    }
    let block = match p.level {
        Some(level) => format!("{} {}", "#".repeat(level.into()), text.replace('\n', " ")),
        None if p.list_item => format!("- {text}"),
        None => text.to_owned(),
    };
    blocks.push(block);
}

fn push_word(target: &mut String, text: &str) {
    if !target.is_empty() && !text.is_empty() {
        target.push(' ');
    }
    target.push_str(text);
}

fn xml_reader(xml: &[u8]) -> Reader<&[u8]> {
    let mut reader = Reader::from_reader(xml);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = false;
    reader
}

fn attr(e: &BytesStart<'_>, name: &[u8]) -> Option<Vec<u8>> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == name)
        .map(|a| a.value.into_owned())
}

fn level_from_style_id(id: &[u8]) -> Option<u8> {
    let id = id.to_ascii_lowercase();
    if id == b"title" {
        return Some(1);
    }
    match id.strip_prefix(b"heading")? {
        [d @ b'1'..=b'6'] => Some(d - b'0'),
        _ => None,
    }
}

fn level_from_style_name(name: &[u8]) -> Option<u8> {
    let name = name.to_ascii_lowercase();
    if name == b"title" {
        return Some(1);
    }
    match name.strip_prefix(b"heading ")? {
        [d @ b'1'..=b'6'] => Some(d - b'0'),
        _ => None,
    }
}

/// `w:outlineLvl` 0..=5 is heading 1..=6; 9 means body text.
fn level_from_outline(v: &[u8]) -> Option<u8> {
    match v {
        [d @ b'0'..=b'5'] => Some(d - b'0' + 1),
        _ => None,
    }
}

fn predefined_entity(name: &[u8]) -> Option<char> {
    match name {
        b"amp" => Some('&'),
        b"lt" => Some('<'),
        b"gt" => Some('>'),
        b"quot" => Some('"'),
        b"apos" => Some('\''),
        _ => None,
    }
}

fn xml_error() -> ParseError {
    ParseError::corrupt("malformed docx xml")
}

fn doctype_error() -> ParseError {
    ParseError::corrupt("docx xml contains a doctype")
}
