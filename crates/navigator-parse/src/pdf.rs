//! PDF text extraction with lopdf.
//!
//! lopdf's own `extract_text` concatenates strings without spacing or line structure, so this
//! module walks each page's content stream itself: it tracks the text and transformation matrices
//! (`BT`, `Tm`, `Td`/`TD`/`T*`/`'`/`"`, `cm`, `q`/`Q`) and the advance of every shown string (from
//! the font's `/Widths` or CID `/W` metrics, falling back to Helvetica/Courier metrics for the
//! standard fonts), and from the pen positions decides where a word space, a line break or a
//! paragraph break goes. Inside `TJ` arrays a large negative adjustment is a word space. Strings
//! are decoded with lopdf's font encodings (`/Encoding`, `/Differences`, `/ToUnicode`). Text in
//! form XObjects (`Do`) is followed, bounded in depth and count.
//!
//! Page lines then become Markdown: paragraphs are separated where the line gap is clearly larger
//! than the page's usual line spacing, and a short line that starts with a section number
//! (`3.1 In-Network Services`), set apart by weight, size or spacing, becomes a `#`..`######`
//! heading by its depth.
//!
//! Cost: one document load, one page-tree walk, and per page only that page's content streams;
//! font encodings (including parsed ToUnicode CMaps) are built once per font object and shared
//! by every page that uses the font.

use std::collections::{BTreeMap, HashMap};

use lopdf::content::{Content, Operation};
use lopdf::{DecompressError, Dictionary, Document, Encoding, LoadOptions, Object};

use crate::normalize::normalize_text;
use crate::{ParseError, ParsedPage};

/// Largest size any single stream may inflate to.
const MAX_STREAM_BYTES: usize = 200 * 1024 * 1024;
const MAX_PAGES: usize = 10_000;
const MAX_OBJECTS: usize = 1_000_000;
/// Extracted text across all pages.
const MAX_TEXT_BYTES: usize = 256 * 1024 * 1024;
const MAX_FORM_DEPTH: usize = 8;
const MAX_FORMS_PER_PAGE: usize = 1_000;
const MAX_OPERATIONS_PER_PAGE: usize = 5_000_000;
const MAX_GRAPHICS_STATE_DEPTH: usize = 256;
/// A gap wider than this fraction of the font size between two shown strings is a word space.
const SPACE_GAP_EM: f64 = 0.15;
/// A `TJ` adjustment at least this large (thousandths of an em, leftwards) is a word space.
const TJ_SPACE_THOUSANDTHS: f64 = 150.0;

pub(crate) fn parse(bytes: &[u8]) -> Result<Vec<ParsedPage>, ParseError> {
    let options = LoadOptions {
        max_decompressed_size: Some(MAX_STREAM_BYTES),
        ..LoadOptions::default()
    };
    let doc = Document::load_mem_with_options(bytes, options)
        .map_err(|error| classify_load_error(&error, bytes))?;
    if doc.trailer.has(b"Encrypt") || doc.was_encrypted() {
        return Err(ParseError::Encrypted);
    }
    if doc.objects.len() > MAX_OBJECTS {
        return Err(ParseError::corrupt("pdf has too many objects"));
    }
    let has_page_tree = doc
        .catalog()
        .and_then(|catalog| catalog.get_deref(b"Pages", &doc))
        .and_then(Object::as_dict)
        .is_ok();
    if !has_page_tree {
        return Err(ParseError::corrupt("pdf has no page tree"));
    }
    let page_ids: Vec<_> = doc.page_iter().take(MAX_PAGES + 1).collect();
    if page_ids.len() > MAX_PAGES {
        return Err(ParseError::corrupt("pdf has too many pages"));
    }
    if page_ids.is_empty() {
        return Err(ParseError::Empty);
    }

    let mut extractor = Extractor::new(&doc);
    let mut pages = Vec::with_capacity(page_ids.len());
    let mut total_text = 0usize;
    for (index, page_id) in page_ids.into_iter().enumerate() {
        let lines = extractor.page_lines(page_id)?;
        let text = normalize_text(&lines_to_markdown(&lines));
        total_text += text.len();
        if total_text > MAX_TEXT_BYTES {
            return Err(ParseError::ResourceLimit);
        }
        pages.push(ParsedPage {
            number: u32::try_from(index + 1).unwrap_or(u32::MAX),
            text,
        });
    }
    if pages.iter().all(|p| p.text.is_empty()) {
        return Err(ParseError::NoTextLayer);
    }
    Ok(pages)
}

fn classify_load_error(error: &lopdf::Error, bytes: &[u8]) -> ParseError {
    match error {
        lopdf::Error::Decompress(DecompressError::MemoryLimitExceeded { .. }) => {
            ParseError::ResourceLimit
        }
        lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword => ParseError::Encrypted,
        // A load that failed on an encrypted file failed because of the encryption.
        _ if contains(bytes, b"/Encrypt") => ParseError::Encrypted,
        _ => ParseError::corrupt("unparseable pdf"),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn is_limit_error(error: &lopdf::Error) -> bool {
    matches!(
        error,
        lopdf::Error::Decompress(DecompressError::MemoryLimitExceeded { .. })
    )
}

// ---------------------------------------------------------------------------------------------
// Geometry

/// A PDF matrix `[a b c d e f]`, applied to row vectors (`p' = p × M`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Matrix([f64; 6]);

impl Matrix {
    const IDENTITY: Matrix = Matrix([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);

    fn translate(tx: f64, ty: f64) -> Matrix {
        Matrix([1.0, 0.0, 0.0, 1.0, tx, ty])
    }

    /// `self × other`: first `self`, then `other`.
    fn then(self, other: Matrix) -> Matrix {
        let [a, b, c, d, e, f] = self.0;
        let [oa, ob, oc, od, oe, of] = other.0;
        Matrix([
            a * oa + b * oc,
            a * ob + b * od,
            c * oa + d * oc,
            c * ob + d * od,
            e * oa + f * oc + oe,
            e * ob + f * od + of,
        ])
    }

    fn from_operands(operands: &[Object]) -> Option<Matrix> {
        if operands.len() < 6 {
            return None;
        }
        let mut m = [0.0; 6];
        for (slot, operand) in m.iter_mut().zip(operands) {
            *slot = number(operand)?;
        }
        m.iter().all(|v| v.is_finite()).then_some(Matrix(m))
    }

    /// How much the matrix scales vertical distances (the font size's scale).
    fn vertical_scale(self) -> f64 {
        let [_, _, c, d, _, _] = self.0;
        (c * c + d * d).sqrt()
    }
}

fn number(object: &Object) -> Option<f64> {
    match object {
        Object::Integer(i) => Some(*i as f64),
        Object::Real(r) => Some(f64::from(*r)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Fonts

enum Widths {
    /// Simple fonts: `/FirstChar` and `/Widths`.
    Simple { first: u32, widths: Vec<f64> },
    /// CID fonts: `/DW` and the `/W` ranges `(first, last, width)`, sorted by `first`.
    Cid {
        default: f64,
        ranges: Vec<(u32, u32, f64)>,
    },
    /// A standard font without metrics in the file.
    Standard(StandardMetrics),
}

#[derive(Clone, Copy)]
enum StandardMetrics {
    Helvetica,
    Courier,
}

struct FontInfo<'a> {
    encoding: Option<Encoding<'a>>,
    /// Type0 fonts address glyphs with two-byte codes (Identity-H and friends).
    two_byte: bool,
    widths: Widths,
    bold: bool,
}

impl<'a> FontInfo<'a> {
    fn new(doc: &'a Document, font: &'a Dictionary) -> Result<Self, ParseError> {
        let encoding = match font.get_font_encoding_with_limit(doc, MAX_STREAM_BYTES) {
            Ok(encoding) => Some(encoding),
            Err(error) if is_limit_error(&error) => return Err(ParseError::ResourceLimit),
            Err(_) => None,
        };
        let two_byte = font.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Type0");
        let base_font = font
            .get(b"BaseFont")
            .and_then(Object::as_name)
            .map(|n| n.to_ascii_lowercase())
            .unwrap_or_default();
        let bold = ["bold", "black", "heavy", "semibold", "demi"]
            .iter()
            .any(|w| contains(&base_font, w.as_bytes()));
        let widths = if two_byte {
            cid_widths(doc, font)
        } else {
            simple_widths(doc, font).unwrap_or_else(|| {
                Widths::Standard(if contains(&base_font, b"courier") {
                    StandardMetrics::Courier
                } else {
                    StandardMetrics::Helvetica
                })
            })
        };
        Ok(FontInfo {
            encoding,
            two_byte,
            widths,
            bold,
        })
    }

    /// Glyph advance of `code` in thousandths of an em.
    fn width(&self, code: u32) -> f64 {
        match &self.widths {
            Widths::Simple { first, widths } => code
                .checked_sub(*first)
                .and_then(|i| widths.get(i as usize))
                .copied()
                .filter(|w| *w > 0.0)
                .unwrap_or(500.0),
            Widths::Cid { default, ranges } => {
                let i = ranges.partition_point(|(first, _, _)| *first <= code);
                match i.checked_sub(1).map(|i| ranges[i]) {
                    Some((_, last, width)) if code <= last => width,
                    _ => *default,
                }
            }
            Widths::Standard(StandardMetrics::Courier) => 600.0,
            Widths::Standard(StandardMetrics::Helvetica) => helvetica_width(code),
        }
    }

    fn decode(&self, bytes: &[u8], out: &mut String) {
        if let Some(encoding) = &self.encoding
            && encoding.write_to_string(bytes, out).is_ok()
        {
            return;
        }
        // No usable encoding: single-byte codes are most likely Latin; two-byte codes without a
        // ToUnicode map cannot be read at all.
        if !self.two_byte {
            out.extend(bytes.iter().map(|&b| char::from(b)));
        }
    }
}

fn simple_widths(doc: &Document, font: &Dictionary) -> Option<Widths> {
    let first = font.get(b"FirstChar").ok().and_then(number)?;
    let array = font
        .get_deref(b"Widths", doc)
        .and_then(Object::as_array)
        .ok()?;
    let widths = array
        .iter()
        .take(65_536)
        .map(|w| {
            let w = doc.dereference(w).ok().and_then(|(_, o)| number(o));
            w.unwrap_or(0.0)
        })
        .collect();
    Some(Widths::Simple {
        first: first.clamp(0.0, 65_535.0) as u32,
        widths,
    })
}

fn cid_widths(doc: &Document, font: &Dictionary) -> Widths {
    let descendant = font
        .get_deref(b"DescendantFonts", doc)
        .and_then(Object::as_array)
        .ok()
        .and_then(|fonts| fonts.first())
        .and_then(|f| doc.dereference(f).ok())
        .and_then(|(_, f)| f.as_dict().ok());
    let Some(descendant) = descendant else {
        return Widths::Cid {
            default: 1000.0,
            ranges: Vec::new(),
        };
    };
    let default = descendant
        .get(b"DW")
        .ok()
        .and_then(number)
        .unwrap_or(1000.0);
    let mut ranges = Vec::new();
    if let Ok(w) = descendant.get_deref(b"W", doc).and_then(Object::as_array) {
        let mut items = w
            .iter()
            .take(200_000)
            .filter_map(|o| doc.dereference(o).ok().map(|(_, o)| o));
        while let Some(first) = items.next().and_then(number) {
            let first = first.max(0.0) as u32;
            match items.next() {
                Some(Object::Array(widths)) => {
                    for (i, w) in widths.iter().enumerate() {
                        if let Some(w) = number(w) {
                            let code = first.saturating_add(i as u32);
                            ranges.push((code, code, w));
                        }
                    }
                }
                Some(last) => {
                    let (Some(last), Some(w)) = (number(last), items.next().and_then(number))
                    else {
                        break;
                    };
                    ranges.push((first, last.max(0.0) as u32, w));
                }
                None => break,
            }
        }
    }
    ranges.sort_by_key(|(first, _, _)| *first);
    Widths::Cid { default, ranges }
}

/// Helvetica advance widths for ASCII (the metrics every reader uses for the standard font).
fn helvetica_width(code: u32) -> f64 {
    const ASCII: [u16; 95] = [
        278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278,
        278, // ' '..'/'
        556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584,
        556, // '0'..'?'
        1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722,
        778, // '@'..'O'
        667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469,
        556, // 'P'..'_'
        333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556,
        556, // '`'..'o'
        556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, // 'p'..'~'
    ];
    match code {
        32..=126 => f64::from(ASCII[(code - 32) as usize]),
        _ => 556.0,
    }
}

/// Fonts are built once per font dictionary and shared by all pages.
#[derive(Default)]
struct FontCache<'a> {
    fonts: Vec<FontInfo<'a>>,
    by_address: HashMap<usize, usize>,
}

impl<'a> FontCache<'a> {
    fn get_or_build(
        &mut self,
        doc: &'a Document,
        font: &'a Dictionary,
    ) -> Result<usize, ParseError> {
        let address = std::ptr::from_ref(font) as usize;
        if let Some(&index) = self.by_address.get(&address) {
            return Ok(index);
        }
        self.fonts.push(FontInfo::new(doc, font)?);
        let index = self.fonts.len() - 1;
        self.by_address.insert(address, index);
        Ok(index)
    }
}

// ---------------------------------------------------------------------------------------------
// Content stream interpretation

/// The resources visible to a content stream: its fonts and XObjects by name.
#[derive(Clone, Default)]
struct Scope<'a> {
    fonts: BTreeMap<Vec<u8>, &'a Dictionary>,
    xobjects: Vec<&'a Dictionary>,
}

impl<'a> Scope<'a> {
    fn from_resources(doc: &'a Document, resources: &'a Dictionary, into: &mut Scope<'a>) {
        if let Ok(fonts) = resources.get_deref(b"Font", doc).and_then(Object::as_dict) {
            for (name, font) in fonts.iter() {
                if let Ok((_, Object::Dictionary(font))) = doc.dereference(font) {
                    into.fonts.entry(name.clone()).or_insert(font);
                }
            }
        }
        if let Ok(xobjects) = resources
            .get_deref(b"XObject", doc)
            .and_then(Object::as_dict)
        {
            into.xobjects.push(xobjects);
        }
    }

    fn page(doc: &'a Document, page_id: lopdf::ObjectId) -> Scope<'a> {
        let mut scope = Scope::default();
        if let Ok((direct, inherited)) = doc.get_page_resources(page_id) {
            if let Some(resources) = direct {
                Scope::from_resources(doc, resources, &mut scope);
            }
            for id in inherited {
                if let Ok(resources) = doc.get_dictionary(id) {
                    Scope::from_resources(doc, resources, &mut scope);
                }
            }
        }
        scope
    }

    fn xobject(&self, doc: &'a Document, name: &[u8]) -> Option<&'a lopdf::Stream> {
        self.xobjects.iter().find_map(|dict| {
            let object = dict.get(name).ok()?;
            doc.dereference(object).ok()?.1.as_stream().ok()
        })
    }
}

#[derive(Clone, Copy)]
struct GraphicsState {
    ctm: Matrix,
    font: Option<usize>,
    font_size: f64,
    char_spacing: f64,
    word_spacing: f64,
    horizontal_scale: f64,
    leading: f64,
}

impl Default for GraphicsState {
    fn default() -> Self {
        GraphicsState {
            ctm: Matrix::IDENTITY,
            font: None,
            font_size: 0.0,
            char_spacing: 0.0,
            word_spacing: 0.0,
            horizontal_scale: 1.0,
            leading: 0.0,
        }
    }
}

/// How the gap before a shown string is judged.
#[derive(Clone, Copy)]
enum Gap {
    /// Compare the pen position with where the previous string ended.
    Measure,
    /// Inside a `TJ` array: only the array's own adjustment counts (`true` = word space).
    Tj(bool),
}

struct Extractor<'a> {
    doc: &'a Document,
    fonts: FontCache<'a>,
    // Per page:
    gs: GraphicsState,
    gs_stack: Vec<GraphicsState>,
    gs_overflow: usize,
    /// A form XObject may not restore states saved by its caller.
    gs_floor: usize,
    tm: Matrix,
    tlm: Matrix,
    operations: usize,
    forms: usize,
    lines: LineBuilder,
    scratch: String,
}

impl<'a> Extractor<'a> {
    fn new(doc: &'a Document) -> Self {
        Extractor {
            doc,
            fonts: FontCache::default(),
            gs: GraphicsState::default(),
            gs_stack: Vec::new(),
            gs_overflow: 0,
            gs_floor: 0,
            tm: Matrix::IDENTITY,
            tlm: Matrix::IDENTITY,
            operations: 0,
            forms: 0,
            lines: LineBuilder::default(),
            scratch: String::new(),
        }
    }

    fn page_lines(&mut self, page_id: lopdf::ObjectId) -> Result<Vec<Line>, ParseError> {
        self.gs = GraphicsState::default();
        self.gs_stack.clear();
        self.gs_overflow = 0;
        self.gs_floor = 0;
        self.tm = Matrix::IDENTITY;
        self.tlm = Matrix::IDENTITY;
        self.operations = 0;
        self.forms = 0;
        self.lines = LineBuilder::default();

        let content = match self
            .doc
            .get_page_content_with_limit(page_id, MAX_STREAM_BYTES)
        {
            Ok(content) => content,
            Err(error) if is_limit_error(&error) => return Err(ParseError::ResourceLimit),
            Err(_) => return Ok(Vec::new()),
        };
        let scope = Scope::page(self.doc, page_id);
        self.run(&content, &scope, 0)?;
        Ok(std::mem::take(&mut self.lines).finish())
    }

    fn run(&mut self, content: &[u8], scope: &Scope<'a>, depth: usize) -> Result<(), ParseError> {
        // A damaged stream keeps the text read before the damage.
        for operation in Content::decode_iter(content).map_while(Result::ok) {
            self.operations += 1;
            if self.operations > MAX_OPERATIONS_PER_PAGE {
                return Err(ParseError::corrupt("pdf page has too many operations"));
            }
            self.operation(&operation, scope, depth)?;
        }
        Ok(())
    }

    fn operation(
        &mut self,
        op: &Operation,
        scope: &Scope<'a>,
        depth: usize,
    ) -> Result<(), ParseError> {
        let operands = &op.operands;
        let num = |i: usize| operands.get(i).and_then(number).filter(|v| v.is_finite());
        match op.operator.as_str() {
            "q" => {
                if self.gs_stack.len() < MAX_GRAPHICS_STATE_DEPTH {
                    self.gs_stack.push(self.gs);
                } else {
                    // Too deep to keep: remember the save so its restore stays balanced.
                    self.gs_overflow += 1;
                }
            }
            "Q" => {
                if self.gs_overflow > 0 {
                    self.gs_overflow -= 1;
                } else if self.gs_stack.len() > self.gs_floor
                    && let Some(gs) = self.gs_stack.pop()
                {
                    self.gs = gs;
                }
            }
            "cm" => {
                if let Some(m) = Matrix::from_operands(operands) {
                    self.gs.ctm = m.then(self.gs.ctm);
                }
            }
            "BT" => {
                self.tm = Matrix::IDENTITY;
                self.tlm = Matrix::IDENTITY;
            }
            "Tf" => {
                let font = operands
                    .first()
                    .and_then(|o| o.as_name().ok())
                    .and_then(|name| scope.fonts.get(name).copied());
                self.gs.font = match font {
                    Some(font) => Some(self.fonts.get_or_build(self.doc, font)?),
                    None => None,
                };
                if let Some(size) = num(1) {
                    self.gs.font_size = size;
                }
            }
            "Tc" => self.gs.char_spacing = num(0).unwrap_or(0.0),
            "Tw" => self.gs.word_spacing = num(0).unwrap_or(0.0),
            "Tz" => self.gs.horizontal_scale = num(0).unwrap_or(100.0) / 100.0,
            "TL" => self.gs.leading = num(0).unwrap_or(0.0),
            "Td" => self.move_line(num(0).unwrap_or(0.0), num(1).unwrap_or(0.0)),
            "TD" => {
                let ty = num(1).unwrap_or(0.0);
                self.gs.leading = -ty;
                self.move_line(num(0).unwrap_or(0.0), ty);
            }
            "Tm" => {
                if let Some(m) = Matrix::from_operands(operands) {
                    self.tm = m;
                    self.tlm = m;
                }
            }
            "T*" => self.move_line(0.0, -self.gs.leading),
            "Tj" => {
                if let Some(Object::String(bytes, _)) = operands.first() {
                    self.show(bytes, Gap::Measure);
                }
            }
            "'" => {
                self.move_line(0.0, -self.gs.leading);
                if let Some(Object::String(bytes, _)) = operands.first() {
                    self.show(bytes, Gap::Measure);
                }
            }
            "\"" => {
                self.gs.word_spacing = num(0).unwrap_or(0.0);
                self.gs.char_spacing = num(1).unwrap_or(0.0);
                self.move_line(0.0, -self.gs.leading);
                if let Some(Object::String(bytes, _)) = operands.get(2) {
                    self.show(bytes, Gap::Measure);
                }
            }
            "TJ" => {
                if let Some(Object::Array(items)) = operands.first() {
                    self.show_array(items);
                }
            }
            "Do" => {
                if let Some(Ok(name)) = operands.first().map(Object::as_name) {
                    self.form(name, scope, depth)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn move_line(&mut self, tx: f64, ty: f64) {
        self.tlm = Matrix::translate(tx, ty).then(self.tlm);
        self.tm = self.tlm;
    }

    fn show_array(&mut self, items: &[Object]) {
        let mut gap = Gap::Measure;
        for item in items {
            match item {
                Object::String(bytes, _) => {
                    self.show(bytes, gap);
                    gap = Gap::Tj(false);
                }
                other => {
                    let Some(adjustment) = number(other).filter(|v| v.is_finite()) else {
                        continue;
                    };
                    let tx = -adjustment / 1000.0 * self.gs.font_size * self.gs.horizontal_scale;
                    self.tm = Matrix::translate(tx, 0.0).then(self.tm);
                    if adjustment <= -TJ_SPACE_THOUSANDTHS {
                        gap = Gap::Tj(true);
                    }
                }
            }
        }
    }

    fn show(&mut self, bytes: &[u8], gap: Gap) {
        let font = self.gs.font.map(|i| &self.fonts.fonts[i]);
        let mut text = std::mem::take(&mut self.scratch);
        text.clear();
        let mut advance = 0.0;
        let size = self.gs.font_size;
        let (tc, tw, th) = (
            self.gs.char_spacing,
            self.gs.word_spacing,
            self.gs.horizontal_scale,
        );
        let mut bold = false;
        match font {
            Some(font) => {
                font.decode(bytes, &mut text);
                bold = font.bold;
                if font.two_byte {
                    for code in bytes.chunks(2) {
                        let code = code.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b));
                        advance += (font.width(code) / 1000.0 * size + tc) * th;
                    }
                } else {
                    for &code in bytes {
                        let spacing = if code == b' ' { tc + tw } else { tc };
                        advance += (font.width(u32::from(code)) / 1000.0 * size + spacing) * th;
                    }
                }
            }
            None => {
                text.extend(bytes.iter().map(|&b| char::from(b)));
                for &code in bytes {
                    let spacing = if code == b' ' { tc + tw } else { tc };
                    advance += (helvetica_width(u32::from(code)) / 1000.0 * size + spacing) * th;
                }
            }
        }

        let start = self.tm.then(self.gs.ctm);
        self.tm = Matrix::translate(advance, 0.0).then(self.tm);
        let end = self.tm.then(self.gs.ctm);
        let device_size = (size.abs() * start.vertical_scale()).max(0.01);
        self.lines.push(
            &text,
            Pen {
                x: start.0[4],
                y: start.0[5],
                end_x: end.0[4],
                size: device_size,
            },
            bold,
            gap,
        );
        self.scratch = text;
    }

    fn form(&mut self, name: &[u8], scope: &Scope<'a>, depth: usize) -> Result<(), ParseError> {
        if depth >= MAX_FORM_DEPTH || self.forms >= MAX_FORMS_PER_PAGE {
            return Ok(());
        }
        let Some(stream) = scope.xobject(self.doc, name) else {
            return Ok(());
        };
        if stream.dict.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Form") {
            return Ok(());
        }
        self.forms += 1;
        let content = match stream.get_plain_content_with_limit(MAX_STREAM_BYTES) {
            Ok(content) => content,
            Err(error) if is_limit_error(&error) => return Err(ParseError::ResourceLimit),
            Err(_) => return Ok(()),
        };
        let own_scope;
        let form_scope = match stream
            .dict
            .get_deref(b"Resources", self.doc)
            .and_then(Object::as_dict)
        {
            Ok(resources) => {
                let mut s = Scope::default();
                Scope::from_resources(self.doc, resources, &mut s);
                // Fonts the form does not define resolve in the caller's scope, as readers do.
                for (name, font) in &scope.fonts {
                    s.fonts.entry(name.clone()).or_insert(font);
                }
                own_scope = s;
                &own_scope
            }
            Err(_) => scope,
        };
        let saved = (self.gs, self.gs_floor, self.gs_overflow, self.tm, self.tlm);
        self.gs_floor = self.gs_stack.len();
        self.gs_overflow = 0;
        if let Some(matrix) = stream
            .dict
            .get(b"Matrix")
            .and_then(Object::as_array)
            .ok()
            .and_then(|m| Matrix::from_operands(m))
        {
            self.gs.ctm = matrix.then(self.gs.ctm);
        }
        let result = self.run(&content, form_scope, depth + 1);
        self.gs_stack.truncate(self.gs_floor);
        (self.gs, self.gs_floor, self.gs_overflow, self.tm, self.tlm) = saved;
        result
    }
}

// ---------------------------------------------------------------------------------------------
// Lines and paragraphs

/// Where a shown string starts and ends, in device space.
struct Pen {
    x: f64,
    y: f64,
    end_x: f64,
    size: f64,
}

#[derive(Debug, Clone)]
struct Line {
    text: String,
    /// Baseline of the line's first string.
    y: f64,
    size: f64,
    bold_chars: usize,
    chars: usize,
}

#[derive(Default)]
struct LineBuilder {
    lines: Vec<Line>,
    last_end_x: f64,
    pending_space: bool,
}

impl LineBuilder {
    fn push(&mut self, text: &str, pen: Pen, bold: bool, gap: Gap) {
        let same_line = self
            .lines
            .last()
            .is_some_and(|line| (pen.y - line.y).abs() <= 0.5 * pen.size.max(line.size));
        if text.trim().is_empty() {
            // A positioned blank still separates words on its line.
            if same_line && !text.is_empty() {
                self.pending_space = true;
            }
            self.last_end_x = pen.end_x;
            return;
        }
        let chars = text.chars().count();
        match self.lines.last_mut() {
            Some(line) if same_line => {
                let space = self.pending_space
                    || match gap {
                        Gap::Tj(space) => space,
                        Gap::Measure => {
                            let dx = pen.x - self.last_end_x;
                            dx > SPACE_GAP_EM * pen.size || dx < -pen.size
                        }
                    };
                if space
                    && !line.text.ends_with(char::is_whitespace)
                    && !text.starts_with(char::is_whitespace)
                {
                    line.text.push(' ');
                }
                line.text.push_str(text);
                line.chars += chars;
                if bold {
                    line.bold_chars += chars;
                }
            }
            _ => self.lines.push(Line {
                text: text.to_owned(),
                y: pen.y,
                size: pen.size,
                bold_chars: if bold { chars } else { 0 },
                chars,
            }),
        }
        self.pending_space = false;
        self.last_end_x = pen.end_x;
    }

    fn finish(self) -> Vec<Line> {
        self.lines
    }
}

/// Joins a page's lines into Markdown: blank lines between paragraphs, `#` headings.
fn lines_to_markdown(lines: &[Line]) -> String {
    let lines: Vec<&Line> = lines.iter().filter(|l| !l.text.trim().is_empty()).collect();
    if lines.is_empty() {
        return String::new();
    }
    let body_size = dominant_size(&lines);
    let gaps: Vec<f64> = lines
        .windows(2)
        .map(|w| w[0].y - w[1].y)
        .filter(|gap| *gap > 0.3 * body_size && *gap < 3.0 * body_size)
        .collect();
    let line_spacing = median(gaps).unwrap_or(1.2 * body_size);

    let mut out = String::new();
    let mut previous_was_heading = false;
    for (i, line) in lines.iter().enumerate() {
        let text = line.text.trim();
        let new_paragraph = i > 0 && {
            let gap = lines[i - 1].y - line.y;
            gap > 1.3 * line_spacing || gap < -0.5 * line.size
        };
        let stands_out = 2 * line.bold_chars > line.chars || line.size > 1.1 * body_size;
        let heading =
            numbered_heading_depth(text).filter(|_| i == 0 || new_paragraph || stands_out);
        if i > 0 {
            out.push_str(
                if new_paragraph || heading.is_some() || previous_was_heading {
                    "\n\n"
                } else {
                    "\n"
                },
            );
        }
        if let Some(depth) = heading {
            for _ in 0..depth {
                out.push('#');
            }
            out.push(' ');
        }
        out.push_str(text);
        previous_was_heading = heading.is_some();
    }
    out
}

/// The font size carrying the most characters.
fn dominant_size(lines: &[&Line]) -> f64 {
    let mut by_size: BTreeMap<i64, usize> = BTreeMap::new();
    for line in lines {
        *by_size.entry((line.size * 2.0).round() as i64).or_default() += line.chars;
    }
    by_size
        .into_iter()
        .max_by_key(|(_, chars)| *chars)
        .map_or(12.0, |(half_points, _)| (half_points as f64 / 2.0).max(0.5))
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    // The lower median: paragraph gaps are the outliers, and they sit on the high side.
    Some(values[(values.len() - 1) / 2])
}

/// `3.1 In-Network Services` → depth 2: one or more dot-separated numbers (each at most two
/// digits, so years and amounts do not qualify), whitespace, then a capital letter; short, and not
/// ending like a sentence.
fn numbered_heading_depth(text: &str) -> Option<usize> {
    if text.chars().count() > 80 || text.ends_with(['.', ',', ';', ':']) {
        return None;
    }
    if text.split_whitespace().count() > 12 {
        return None;
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut depth = 0;
    loop {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if !(1..=2).contains(&(i - start)) {
            return None;
        }
        depth += 1;
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            if bytes.get(i).is_some_and(u8::is_ascii_digit) {
                continue;
            }
        }
        break;
    }
    let rest = &text[i..];
    let title = rest.trim_start();
    if title.len() == rest.len() || !title.starts_with(char::is_uppercase) {
        return None;
    }
    Some(depth.min(6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_headings_get_their_depth() {
        assert_eq!(numbered_heading_depth("1. Introduction"), Some(1));
        assert_eq!(numbered_heading_depth("3.1 In-Network Services"), Some(2));
        assert_eq!(numbered_heading_depth("2.4.1. Limits"), Some(3));
        assert_eq!(numbered_heading_depth("2024 Annual Report"), None);
        assert_eq!(numbered_heading_depth("1. Claims must be filed."), None);
        assert_eq!(numbered_heading_depth("3.1 in lowercase"), None);
        assert_eq!(numbered_heading_depth("12"), None);
    }

    #[test]
    fn matrices_compose_first_then_second() {
        let m = Matrix::translate(10.0, 20.0).then(Matrix([2.0, 0.0, 0.0, 2.0, 1.0, 1.0]));
        assert_eq!(m.0, [2.0, 0.0, 0.0, 2.0, 21.0, 41.0]);
    }

    fn line(text: &str, y: f64) -> Line {
        Line {
            text: text.to_owned(),
            y,
            size: 12.0,
            bold_chars: 0,
            chars: text.len(),
        }
    }

    #[test]
    fn wide_line_gaps_separate_paragraphs_and_numbered_lines_become_headings() {
        let lines = vec![
            line("1. Scope", 800.0),
            line("First paragraph line one", 780.0),
            line("line two.", 766.0),
            line("Second paragraph.", 736.0),
        ];
        assert_eq!(
            lines_to_markdown(&lines),
            "# 1. Scope\n\nFirst paragraph line one\nline two.\n\nSecond paragraph."
        );
    }
}
