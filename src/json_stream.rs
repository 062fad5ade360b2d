//! A REST answer's list, split into its items as the answer's bytes arrive (issue 13, point 7).
//!
//! A list answer is one object such as `{"kontaktgrupper":[{...},{...}, ...]}` or
//! `{"versioner":[...]}`, with any number of items. Read whole (`crate::json::Json::parse`),
//! a call holds the whole answer and its parsed form, so its memory grows with the answer.
//! [`ItemSplitter`] is the sans-IO step that lets the converter transcode item by item
//! instead: it is fed the answer's chunks as they come (any sizes, one byte to all of it)
//! and hands over each complete element of the named array as one slice holding exactly
//! that JSON value, which the caller parses (`Json::parse`) and writes as SOAP at once. The
//! memory of a call is then bounded by its largest item, not by the answer: the splitter
//! keeps O(1) state for the nesting (at most [`MAX_DEPTH`] levels, one bit each) and, only
//! for an item that spans chunks, that item's bytes so far (at most `max_item_bytes`).
//!
//! What it checks: the structure of the whole document (strings with their escapes, the
//! nesting of `{}` and `[]`, commas and colons where they belong, the literals `true`,
//! `false` and `null`), that the top level is one object, that it has the named member
//! exactly once and that its value is an array, and that nothing but whitespace follows.
//! What it leaves to `Json::parse` of each item: the grammar of numbers (a number is any
//! run of `0-9 + - . e E` starting with `-` or a digit), UTF-8 validity and the pairing of
//! `\uXXXX` surrogates. Members other than the named one are therefore checked only at that
//! structural level; they are never parsed.
//!
//! Only a member of the top-level object counts: a member of the same name deeper down is
//! part of some other value and is skipped. A member name written with escapes
//! (`"kontakt\u0067rupper"`) is the name it decodes to, as for `Json::parse`.
//!
//! A leading UTF-8 byte order mark is refused (a syntax error at byte 0), as
//! `Json::parse` (serde_json) refuses it: both ways of reading an answer accept the same
//! documents.
//!
//! The scan is a byte loop over a small state machine, with inner loops for the runs that
//! make up most of an answer (the inside of strings, numbers, whitespace); it allocates
//! nothing per byte and calls back once per item. An item wholly inside one chunk is handed
//! over as a sub-slice of that chunk, without a copy.

use std::convert::Infallible;

/// How deeply arrays and objects may nest (the top-level object is level 1); deeper is
/// [`Fault::TooDeep`]. serde_json's default recursion limit is also 128.
pub const MAX_DEPTH: usize = 128;

/// Why a document was not split to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// Not JSON: the structure is broken at `offset` (bytes from the document's start).
    #[error("not JSON at byte {offset}: {what}")]
    Syntax { offset: usize, what: &'static str },
    /// The document ended (at `offset`, its length) before its top-level object closed.
    #[error("the JSON ended early, after {offset} bytes")]
    Truncated { offset: usize },
    /// The document is JSON but its top level is not an object.
    #[error("the JSON's top level is not an object (byte {offset})")]
    NotAnObject { offset: usize },
    /// The top-level object, closing at `offset`, has no member of the items' name.
    #[error("the JSON object closing at byte {offset} has no member holding the items")]
    MissingMember { offset: usize },
    /// The member of the items' name holds something else than an array (from `offset`).
    #[error("the items member's value at byte {offset} is not an array")]
    NotAnArray { offset: usize },
    /// A second member of the items' name, its name starting at `offset`.
    #[error("the items member appears a second time, at byte {offset}")]
    DuplicateMember { offset: usize },
    /// Item `index` (from 0), starting at `offset`, is longer than `limit` bytes.
    #[error("item {index} (at byte {offset}) is longer than {limit} bytes")]
    ItemTooLarge {
        index: usize,
        offset: usize,
        limit: usize,
    },
    /// Arrays and objects nest deeper than `limit` levels at `offset`.
    #[error("the JSON nests deeper than {limit} levels at byte {offset}")]
    TooDeep { offset: usize, limit: usize },
    /// Something else than whitespace follows the top-level object, at `offset`.
    #[error("bytes follow the JSON document, at byte {offset}")]
    TrailingBytes { offset: usize },
    /// An earlier call's item callback failed; the splitter does not go on after that.
    #[error("the splitter stopped: an item callback failed earlier")]
    Stopped,
}

/// An error of [`ItemSplitter::feed`]: the document's, or the item callback's own.
#[derive(Debug, thiserror::Error)]
pub enum SplitError<E = Infallible> {
    #[error(transparent)]
    Fault(#[from] Fault),
    #[error("{0}")]
    Callback(E),
}

/// What is expected at the next byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A value (the document, a member's value after `:`, an element after `,`).
    Value,
    /// After `[`: an element or `]`.
    ValueOrClose,
    /// After `{`: a member name or `}`.
    KeyOrClose,
    /// After `,` in an object: a member name.
    Key,
    /// After a member name.
    Colon,
    /// After a value inside an array or object.
    CommaOrClose,
    /// Inside a string (a member name if `key_str`).
    Str,
    /// After a backslash in a string.
    Escape,
    /// Inside `\uXXXX`: this many hex digits to go.
    Hex(u8),
    /// Inside `true`, `false` or `null`: the word (in [`WORDS`]) and how much of it was read.
    Literal(u8, u8),
    /// Inside a number.
    Number,
    /// After the top-level value: only whitespace may follow.
    End,
}

/// Which bytes the open capture gathers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Capture {
    None,
    /// An element of the items array.
    Item,
    /// A member name of the top-level object, with its quotes.
    Key,
}

/// Where the items array is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Items {
    NotSeen,
    Open,
    Closed,
}

/// The literals, as [`Mode::Literal`] counts them.
const WORDS: [&[u8]; 3] = [b"true", b"false", b"null"];

/// Bytes that end the fast run inside a string: `"`, `\` and the control characters.
static STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Where the plain inside of a string ends in `bytes`: the index of its first `"`, `\` or
/// control character, or `bytes.len()` if it holds none. Read 8 bytes at a time: in each
/// word, a mask with the high bit of every byte that may be a stop (exact for the lowest
/// such byte, which is the first in memory as the word is read little-endian).
#[inline]
fn string_stop(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    /// The high bit of each byte of `x` below `n` (`n` at most 0x80), plus possibly bits
    /// above the lowest such byte (a borrow), never below it.
    #[inline]
    fn below(x: u64, n: u8) -> u64 {
        x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS
    }
    let mut at = 0;
    let mut blocks = bytes.chunks_exact(8);
    for block in &mut blocks {
        // A failed conversion (never: the block is 8 bytes) reads as a stop.
        let w = u64::from_le_bytes(block.try_into().unwrap_or([0; 8]));
        let stops = below(w, 0x20)
            | below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1);
        if stops != 0 {
            return at + (stops.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    for &b in blocks.remainder() {
        if STRING_STOP[usize::from(b)] {
            return at;
        }
        at += 1;
    }
    at
}

fn is_number_byte(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Splits a JSON document, fed in chunks, into the elements of the array that is the value
/// of its top-level object's member `items_key` (see the module documentation).
///
/// After an error every further `feed` and `finish` fails with the same [`Fault`] (or
/// [`Fault::Stopped`] after a callback's error).
#[derive(Debug)]
pub struct ItemSplitter {
    key: Box<[u8]>,
    /// The longest a member name can be written and still be `key` (every byte escaped as
    /// `\uXXXX`, plus the quotes): a longer name is not gathered.
    key_limit: usize,
    max_item: usize,
    /// Bytes of the chunks before the current one.
    consumed: usize,
    mode: Mode,
    /// Open arrays and objects; bit `d` of `arrays` says whether level `d + 1` is an array.
    depth: usize,
    arrays: u128,
    key_str: bool,
    /// The member of the top-level object being read is the items member.
    member_is_items: bool,
    items: Items,
    count: usize,
    capture: Capture,
    /// Where the open capture starts in the current chunk (0 if it began in an earlier one).
    cap_from: usize,
    /// Where the open capture starts in the document.
    cap_at: usize,
    /// The open capture began in an earlier chunk: its bytes so far are in `buf`.
    spanning: bool,
    buf: Vec<u8>,
    failed: Option<Fault>,
}

impl ItemSplitter {
    /// A splitter for the elements of the top-level member `items_key`, each at most
    /// `max_item_bytes` long.
    pub fn new(items_key: &str, max_item_bytes: usize) -> ItemSplitter {
        ItemSplitter {
            key: items_key.as_bytes().into(),
            key_limit: items_key.len().saturating_mul(6).saturating_add(2),
            max_item: max_item_bytes,
            consumed: 0,
            mode: Mode::Value,
            depth: 0,
            arrays: 0,
            key_str: false,
            member_is_items: false,
            items: Items::NotSeen,
            count: 0,
            capture: Capture::None,
            cap_from: 0,
            cap_at: 0,
            spanning: false,
            buf: Vec::new(),
            failed: None,
        }
    }

    /// Scans the next `chunk` of the document and calls `on_item` with each element of the
    /// items array completed in it, in order. An element wholly inside `chunk` is a
    /// sub-slice of `chunk`; one that began in an earlier chunk is gathered in the
    /// splitter's buffer (never over `max_item_bytes`). The callback's error stops the
    /// splitter and is passed through as [`SplitError::Callback`].
    pub fn feed<E>(
        &mut self,
        chunk: &[u8],
        mut on_item: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), SplitError<E>> {
        if let Some(fault) = self.failed {
            return Err(fault.into());
        }
        match self.scan(chunk, &mut on_item) {
            Ok(()) => {
                self.consumed += chunk.len();
                Ok(())
            }
            Err(e) => {
                self.failed = Some(match &e {
                    SplitError::Fault(fault) => *fault,
                    SplitError::Callback(_) => Fault::Stopped,
                });
                Err(e)
            }
        }
    }

    /// The document ended: the number of items, if it was one complete top-level object
    /// with the items member holding an array (and nothing but whitespace after it).
    /// An empty document is [`Fault::Truncated`] at 0.
    pub fn finish(&self) -> Result<usize, Fault> {
        if let Some(fault) = self.failed {
            return Err(fault);
        }
        if self.mode != Mode::End {
            return Err(Fault::Truncated {
                offset: self.consumed,
            });
        }
        // A top-level object without the member failed where it closed.
        Ok(self.count)
    }

    /// The bytes the splitter holds for items that span chunks (its buffer's capacity): at
    /// most `max_item_bytes`; the longest such item if each spanned at most two chunks,
    /// else up to twice that (the buffer grows by doubling while an item is still open).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    fn scan<E>(
        &mut self,
        chunk: &[u8],
        on_item: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), SplitError<E>> {
        let n = chunk.len();
        let mut i = 0;
        self.cap_from = 0;
        // The mode lives in a register while the chunk is read; the helpers return the next.
        let mut mode = self.mode;
        while i < n {
            let b = chunk[i];
            match mode {
                Mode::Str => {
                    i += string_stop(&chunk[i..]);
                    match chunk.get(i) {
                        None => {}
                        Some(b'"') => {
                            i += 1;
                            mode = self.string_end(chunk, i, on_item)?;
                            // Most member names are followed at once by their colon.
                            if mode == Mode::Colon && chunk.get(i) == Some(&b':') {
                                mode = Mode::Value;
                                i += 1;
                            }
                        }
                        Some(b'\\') => {
                            mode = Mode::Escape;
                            i += 1;
                        }
                        Some(_) => {
                            return Err(self.syntax(i, "a control character in a string").into());
                        }
                    }
                }
                Mode::Escape => {
                    mode = match b {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Mode::Str,
                        b'u' => Mode::Hex(4),
                        _ => return Err(self.syntax(i, "an unknown escape in a string").into()),
                    };
                    i += 1;
                }
                Mode::Hex(left) => {
                    if !b.is_ascii_hexdigit() {
                        return Err(self
                            .syntax(i, "a \\u escape without four hex digits")
                            .into());
                    }
                    mode = if left <= 1 {
                        Mode::Str
                    } else {
                        Mode::Hex(left - 1)
                    };
                    i += 1;
                }
                Mode::Number => {
                    while i < n && is_number_byte(chunk[i]) {
                        i += 1;
                    }
                    if i < n {
                        // The number ended before this byte, which is read again.
                        mode = self.value_done(chunk, i, on_item)?;
                    }
                }
                Mode::Literal(w, at) => {
                    let word = WORDS[usize::from(w)];
                    if word.get(usize::from(at)) != Some(&b) {
                        return Err(self.syntax(i, "not true, false or null").into());
                    }
                    i += 1;
                    mode = if usize::from(at) + 1 == word.len() {
                        self.value_done(chunk, i, on_item)?
                    } else {
                        Mode::Literal(w, at + 1)
                    };
                }
                _ if is_ws(b) => {
                    i += 1;
                    while i < n && is_ws(chunk[i]) {
                        i += 1;
                    }
                }
                Mode::Value | Mode::ValueOrClose => {
                    i += 1;
                    mode = if b == b']' && mode == Mode::ValueOrClose {
                        self.close(true, chunk, i, on_item)?
                    } else {
                        self.begin_value(b, i - 1)?
                    };
                    // A literal wholly in the chunk is read at once (else byte by byte).
                    if let Mode::Literal(w, 1) = mode {
                        let word = WORDS[usize::from(w)];
                        if chunk[i - 1..].starts_with(word) {
                            i += word.len() - 1;
                            mode = self.value_done(chunk, i, on_item)?;
                        }
                    }
                }
                Mode::KeyOrClose | Mode::Key => {
                    if b == b'"' {
                        self.key_str = true;
                        mode = Mode::Str;
                        if self.depth == 1 {
                            self.start_capture(Capture::Key, i);
                        }
                    } else if b == b'}' && mode == Mode::KeyOrClose {
                        mode = self.close(false, chunk, i + 1, on_item)?;
                    } else {
                        return Err(self.syntax(i, "expected a member name").into());
                    }
                    i += 1;
                }
                Mode::Colon => {
                    if b != b':' {
                        return Err(self.syntax(i, "expected ':' after a member name").into());
                    }
                    mode = Mode::Value;
                    i += 1;
                }
                Mode::CommaOrClose => {
                    let in_array = self.top_is_array();
                    match b {
                        // Most members follow their comma at once: the name's quote is read
                        // here, as `Mode::Key` would.
                        b',' if !in_array && chunk.get(i + 1) == Some(&b'"') => {
                            i += 1;
                            self.key_str = true;
                            mode = Mode::Str;
                            if self.depth == 1 {
                                self.start_capture(Capture::Key, i);
                            }
                        }
                        b',' => mode = if in_array { Mode::Value } else { Mode::Key },
                        b']' | b'}' if (b == b']') == in_array => {
                            mode = self.close(in_array, chunk, i + 1, on_item)?;
                        }
                        _ if in_array => return Err(self.syntax(i, "expected ',' or ']'").into()),
                        _ => return Err(self.syntax(i, "expected ',' or '}'").into()),
                    }
                    i += 1;
                }
                Mode::End => {
                    return Err(Fault::TrailingBytes {
                        offset: self.consumed + i,
                    }
                    .into());
                }
            }
        }
        self.mode = mode;
        self.hold(chunk)?;
        Ok(())
    }

    fn syntax(&self, i: usize, what: &'static str) -> Fault {
        Fault::Syntax {
            offset: self.consumed + i,
            what,
        }
    }

    fn top_is_array(&self) -> bool {
        self.depth > 0 && (self.arrays >> (self.depth - 1)) & 1 == 1
    }

    /// A value starts with byte `b` at `i` (already counted as read).
    #[inline(always)]
    fn begin_value(&mut self, b: u8, i: usize) -> Result<Mode, Fault> {
        let offset = self.consumed + i;
        match self.depth {
            0 if b != b'{' => {
                return Err(match b {
                    b'[' | b'"' | b't' | b'f' | b'n' | b'-' | b'0'..=b'9' => {
                        Fault::NotAnObject { offset }
                    }
                    0xEF if offset == 0 => self.syntax(i, "a byte order mark"),
                    _ => self.syntax(i, "expected a JSON value"),
                });
            }
            1 if self.member_is_items => {
                if b != b'[' {
                    return Err(Fault::NotAnArray { offset });
                }
                self.items = Items::Open;
            }
            2 if self.items == Items::Open => self.start_capture(Capture::Item, i),
            _ => {}
        }
        Ok(match b {
            b'{' => {
                self.push(false, offset)?;
                Mode::KeyOrClose
            }
            b'[' => {
                self.push(true, offset)?;
                Mode::ValueOrClose
            }
            b'"' => {
                self.key_str = false;
                Mode::Str
            }
            b't' => Mode::Literal(0, 1),
            b'f' => Mode::Literal(1, 1),
            b'n' => Mode::Literal(2, 1),
            b'-' | b'0'..=b'9' => Mode::Number,
            _ => return Err(self.syntax(i, "expected a JSON value")),
        })
    }

    fn push(&mut self, array: bool, offset: usize) -> Result<(), Fault> {
        if self.depth >= MAX_DEPTH {
            return Err(Fault::TooDeep {
                offset,
                limit: MAX_DEPTH,
            });
        }
        let bit = 1u128 << self.depth;
        if array {
            self.arrays |= bit;
        } else {
            self.arrays &= !bit;
        }
        self.depth += 1;
        Ok(())
    }

    /// The innermost array (or object) closes; `end` is just after its closing byte. The
    /// mode after it.
    #[inline]
    fn close<E>(
        &mut self,
        array: bool,
        chunk: &[u8],
        end: usize,
        on_item: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<Mode, SplitError<E>> {
        self.depth -= 1;
        match self.depth {
            1 if array && self.items == Items::Open => self.items = Items::Closed,
            0 if self.items != Items::Closed => {
                return Err(Fault::MissingMember {
                    offset: self.consumed + end - 1,
                }
                .into());
            }
            _ => {}
        }
        self.value_done(chunk, end, on_item)
    }

    /// A string's closing quote was read; `end` is just after it. The mode after it.
    #[inline]
    fn string_end<E>(
        &mut self,
        chunk: &[u8],
        end: usize,
        on_item: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<Mode, SplitError<E>> {
        if !self.key_str {
            return self.value_done(chunk, end, on_item);
        }
        if self.depth == 1 {
            let is_items = self.capture == Capture::Key && {
                let part = &chunk[self.cap_from..end];
                self.buf.len() + part.len() <= self.key_limit
                    && decodes_to(captured(&mut self.buf, self.spanning, part), &self.key)
            };
            self.member_is_items = is_items;
            self.end_capture();
            if is_items && self.items != Items::NotSeen {
                return Err(Fault::DuplicateMember {
                    offset: self.cap_at,
                }
                .into());
            }
        }
        Ok(Mode::Colon)
    }

    /// A value ended just before `end`: the mode after it.
    #[inline(always)]
    fn value_done<E>(
        &mut self,
        chunk: &[u8],
        end: usize,
        on_item: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<Mode, SplitError<E>> {
        if self.depth == 2 && self.capture == Capture::Item {
            let len = self.buf.len() + (end - self.cap_from);
            if len > self.max_item {
                return Err(self.too_large().into());
            }
            let item = captured(&mut self.buf, self.spanning, &chunk[self.cap_from..end]);
            on_item(item).map_err(SplitError::Callback)?;
            self.count += 1;
            self.end_capture();
        }
        Ok(if self.depth == 0 {
            Mode::End
        } else {
            Mode::CommaOrClose
        })
    }

    fn too_large(&self) -> Fault {
        Fault::ItemTooLarge {
            index: self.count,
            offset: self.cap_at,
            limit: self.max_item,
        }
    }

    fn start_capture(&mut self, what: Capture, i: usize) {
        self.capture = what;
        self.cap_from = i;
        self.cap_at = self.consumed + i;
        self.spanning = false;
    }

    fn end_capture(&mut self) {
        self.capture = Capture::None;
        self.spanning = false;
        self.buf.clear();
    }

    fn limit(&self) -> usize {
        match self.capture {
            Capture::Key => self.key_limit,
            _ => self.max_item,
        }
    }

    /// At a chunk's end: keeps the open capture's bytes of this chunk.
    fn hold(&mut self, chunk: &[u8]) -> Result<(), Fault> {
        if self.capture == Capture::None {
            return Ok(());
        }
        let part = &chunk[self.cap_from..];
        let limit = self.limit();
        if self.buf.len() + part.len() > limit {
            if self.capture == Capture::Item {
                return Err(self.too_large());
            }
            // A member name this long is not the items' name.
            self.end_capture();
            return Ok(());
        }
        append(&mut self.buf, part, limit);
        self.spanning = true;
        Ok(())
    }
}

/// A capture's bytes, its last part `part` in the current chunk: `part` itself, or, if the
/// capture began in an earlier chunk (`spanning`), `buf` with `part` appended (growing `buf`
/// to the exact size: the item is complete).
fn captured<'s>(buf: &'s mut Vec<u8>, spanning: bool, part: &'s [u8]) -> &'s [u8] {
    if !spanning {
        return part;
    }
    buf.reserve_exact(part.len());
    buf.extend_from_slice(part);
    buf
}

/// Appends to `buf`, growing it by doubling but never past `limit` (`buf` and `bytes`
/// together are within it).
fn append(buf: &mut Vec<u8>, bytes: &[u8], limit: usize) {
    let needed = buf.len() + bytes.len();
    if needed > buf.capacity() {
        let target = needed
            .max(buf.capacity().saturating_mul(2))
            .min(limit.max(needed));
        buf.reserve_exact(target - buf.len());
    }
    buf.extend_from_slice(bytes);
}

/// Whether the JSON string `raw` (with its quotes) is `key`.
fn decodes_to(raw: &[u8], key: &[u8]) -> bool {
    let Some(inner) = raw.strip_prefix(b"\"").and_then(|r| r.strip_suffix(b"\"")) else {
        return false;
    };
    if !inner.contains(&b'\\') {
        return inner == key;
    }
    matches!(serde_json::from_slice::<String>(raw), Ok(s) if s.as_bytes() == key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::json::Json;

    /// Feeds `chunks` and returns the items (copied) and the count `finish` gives.
    fn split<'c>(
        key: &str,
        max: usize,
        chunks: impl IntoIterator<Item = &'c [u8]>,
    ) -> (Vec<Vec<u8>>, Result<usize, Fault>) {
        let mut s = ItemSplitter::new(key, max);
        let mut items = Vec::new();
        for chunk in chunks {
            let fed = s.feed(chunk, |item| {
                items.push(item.to_vec());
                Ok::<(), Infallible>(())
            });
            if let Err(e) = fed {
                let SplitError::Fault(fault) = e;
                assert_eq!(s.finish(), Err(fault), "the error stays");
                return (items, Err(fault));
            }
        }
        let done = s.finish();
        (items, done)
    }

    /// Every way of feeding `doc` the tests use: whole, in two parts at every position, and
    /// one byte at a time.
    fn chunkings(doc: &[u8]) -> Vec<Vec<&[u8]>> {
        let mut all = vec![vec![doc]];
        for at in 0..=doc.len() {
            let (a, b) = doc.split_at(at);
            all.push(vec![a, b]);
        }
        all.push(doc.chunks(1).collect());
        all
    }

    /// `doc` splits, fed every way, into the elements `Json::parse` finds at `key`.
    fn splits_as_parsed(doc: &[u8], key: &str) {
        let whole = Json::parse(doc).unwrap();
        let expected = whole.get(key).unwrap().as_array().unwrap();
        let mut first: Option<Vec<Vec<u8>>> = None;
        for chunks in chunkings(doc) {
            let (items, done) = split(key, usize::MAX, chunks.iter().copied());
            assert_eq!(done, Ok(expected.len()), "{}", String::from_utf8_lossy(doc));
            assert_eq!(items.len(), expected.len());
            for (item, want) in items.iter().zip(expected) {
                assert_eq!(&Json::parse(item).unwrap(), want);
                assert!(!is_ws(item[0]) && !is_ws(item[item.len() - 1]));
            }
            match &first {
                None => first = Some(items),
                Some(first) => assert_eq!(first, &items, "the same slices at any chunking"),
            }
        }
    }

    const RICH: &str = r#"
        { "meta": {"kontaktgrupper": [1, 2, {"x": "]"}], "s": "}\"\\]", "kontaktgrupper": 7},
          "other": [[], [{}], "[", -1.5e+3, true, false, null, {"kontaktgrupper": []}],
          "kontaktgrupper" : [
            {"id": "9b2c", "navn": "Køge \"101\" ]}", "tags": ["a]", "b}", [], {}],
             "n": null, "esc": "\u005d\\\"\/\b\f\n\r\t\u00e6\ud83d\ude00", "k": {"kontaktgrupper": [9]}},
            [1, [2, [3, {"a": [[]]}]]],
            "str ] } \" \\ \u005d",
            12, -0.5e10, 0, true, false, null, {}, [], "日本語 😀", "",
            {"deep": {"deeper": {"deepest": ["\\", "\\\\", "\"", "{[", "]}"]}}}
          ],
          "after": {"a": [{"b": "c"}], "kontaktgrupper": "not this"},
          "n": 3, "last": "\\"
        }
    "#;

    #[test]
    fn splits_every_document_at_every_position_as_parse_reads_it() {
        for (doc, key) in [
            (r#"{"kontaktgrupper":[]}"#, "kontaktgrupper"),
            (r#"{"kontaktgrupper":[{"id":"a"}]}"#, "kontaktgrupper"),
            (RICH, "kontaktgrupper"),
            (r#"{"versioner":[1,22,333]}"#, "versioner"),
            (r#"{"versioner":[true,"x",null]}"#, "versioner"),
            (
                "\n\t{ \r\n \"versioner\" \n:\n [ \n 1 \n , \n \"x\" \n , {\n} ] \n } \n\n",
                "versioner",
            ),
            (r#"{"kontakt\u0067rupper":[1,2]}"#, "kontaktgrupper"),
            (
                r#"{"kontaktgrupperX":[1],"kontaktgruppe":[2],"kontaktgrupper":[3],"":[4]}"#,
                "kontaktgrupper",
            ),
            (r#"{"ø":[{"æ":"å"}]}"#, "ø"),
            (
                r#"{"kontaktgrupperkontaktgrupperkontaktgrupperkontaktgrupperkontaktgrupperkontaktgrupperkontaktgrupperkontaktgrupper":[1],"kontaktgrupper":[2]}"#,
                "kontaktgrupper",
            ),
            (r#"{"a\"b":["\"",[]]}"#, "a\"b"),
            (
                "{\"k\":[\"ÆØÅ æøå Köge 日本語 😀😀 \u{7f}\u{7f} plain text, long enough\"]}",
                "k",
            ),
        ] {
            splits_as_parsed(doc.as_bytes(), key);
        }
    }

    #[test]
    fn a_truncated_document_fails_at_finish_at_every_length() {
        let doc = RICH.as_bytes();
        let close = doc.iter().rposition(|&b| b == b'}').unwrap();
        for len in 0..=close {
            for chunks in [vec![&doc[..len]], doc[..len].chunks(1).collect()] {
                let (_, done) = split("kontaktgrupper", usize::MAX, chunks);
                assert_eq!(done, Err(Fault::Truncated { offset: len }), "at {len}");
            }
        }
        let n = Json::parse(doc)
            .unwrap()
            .get("kontaktgrupper")
            .unwrap()
            .as_array()
            .unwrap()
            .len();
        for len in close + 1..=doc.len() {
            assert_eq!(split("kontaktgrupper", usize::MAX, [&doc[..len]]).1, Ok(n));
        }
    }

    #[test]
    fn the_items_a_truncated_document_gives_are_its_complete_ones() {
        let doc = br#"{"k":[{"a":1},"b}",3,[4]]}"#;
        let all = split("k", usize::MAX, [&doc[..]]).0;
        for len in 0..doc.len() {
            let (items, _) = split("k", usize::MAX, doc[..len].chunks(1));
            assert_eq!(items[..], all[..items.len()], "at {len}");
        }
    }

    fn fault(doc: &str, key: &str, max: usize) -> Fault {
        let doc = doc.as_bytes();
        let mut seen = None;
        for chunks in chunkings(doc) {
            let got = split(key, max, chunks).1.unwrap_err();
            match seen {
                None => seen = Some(got),
                Some(first) => assert_eq!(first, got, "the same error at any chunking"),
            }
        }
        seen.unwrap()
    }

    #[test]
    fn the_document_must_be_an_object_with_the_member_as_an_array() {
        for doc in [
            r#"{"a":[1]}"#,
            r#"{"a":{"k":[1]}}"#,
            r#"{"a":[{"k":[1]}]}"#,
            "{}",
        ] {
            let at = doc.len() - 1;
            assert_eq!(fault(doc, "k", 100), Fault::MissingMember { offset: at });
            assert!(split("k", 100, [doc.as_bytes()]).0.is_empty(), "{doc}");
        }
        for doc in [
            r#"{"k":{"a":1}}"#,
            r#"{"k":null}"#,
            r#"{"k":"[1]"}"#,
            r#"{"k":1}"#,
        ] {
            assert_eq!(fault(doc, "k", 100), Fault::NotAnArray { offset: 5 });
        }
        for doc in ["[1]", r#""{}""#, "1", "null", " true"] {
            let at = doc.len() - doc.trim_start().len();
            assert_eq!(fault(doc, "k", 100), Fault::NotAnObject { offset: at });
        }
        assert_eq!(
            fault(r#"{"k":[1],"a":2,"k":[2]}"#, "k", 100),
            Fault::DuplicateMember { offset: 15 }
        );
        assert_eq!(
            fault(r#"{"k":[1],"\u006b":[2]}"#, "k", 100),
            Fault::DuplicateMember { offset: 9 }
        );
        assert_eq!(fault("", "k", 100), Fault::Truncated { offset: 0 });
    }

    #[test]
    fn an_item_over_the_bound_fails_at_any_chunking() {
        let doc = r#"{"k":["1234567",1234567890,"12345678"]}"#;
        assert_eq!(split("k", 10, [doc.as_bytes()]).1, Ok(3));
        assert_eq!(
            fault(doc, "k", 9),
            Fault::ItemTooLarge {
                index: 1,
                offset: 16,
                limit: 9
            }
        );
        for chunks in chunkings(doc.as_bytes()) {
            assert_eq!(split("k", 10, chunks).1, Ok(3));
        }
    }

    #[test]
    fn bytes_after_the_document_fail() {
        assert_eq!(
            fault(r#"{"k":[]} x"#, "k", 10),
            Fault::TrailingBytes { offset: 9 }
        );
        assert_eq!(
            fault(r#"{"k":[]}{}"#, "k", 10),
            Fault::TrailingBytes { offset: 8 }
        );
        assert_eq!(
            fault(r#"{"k":[1]}}"#, "k", 10),
            Fault::TrailingBytes { offset: 9 }
        );
        assert_eq!(split("k", 10, [&b"{\"k\":[]} \r\n\t "[..]]).1, Ok(0));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |levels: usize| {
            format!(
                r#"{{"a":{}{},"k":[]}}"#,
                "[".repeat(levels - 1),
                "]".repeat(levels - 1)
            )
        };
        assert_eq!(split("k", 10, [deep(MAX_DEPTH).as_bytes()]).1, Ok(0));
        let err = split("k", 10, [deep(MAX_DEPTH + 1).as_bytes()]).1;
        assert_eq!(
            err,
            Err(Fault::TooDeep {
                offset: 5 + MAX_DEPTH - 1,
                limit: MAX_DEPTH
            })
        );
        let bomb = format!(r#"{{"k":[{}"#, "[{\"a\":".repeat(100_000));
        let err = split("k", usize::MAX, bomb.as_bytes().chunks(8192)).1;
        assert!(matches!(err, Err(Fault::TooDeep { .. })), "{err:?}");
    }

    #[test]
    fn broken_structure_fails_where_it_breaks() {
        for (doc, at) in [
            (r#"{"k":[1,]}"#, 8),
            (r#"{"k":[1 2]}"#, 8),
            (r#"{"k" 1}"#, 5),
            (r#"{"k":[}"#, 6),
            (r#"{"k":[1}"#, 7),
            (r#"{"x":{"a":1]}"#, 11),
            (r#"{"k":[tru]}"#, 9),
            (r#"{"k":[nul]}"#, 9),
            (r#"{"k":[truex]}"#, 10),
            (r#"{"k":[x]}"#, 6),
            (r#"{"k":["\x"]}"#, 8),
            (r#"{"k":["\u12G4"]}"#, 11),
            ("{\"k\":[\"a\nb\"]}", 8),
            ("{\"k\":[\"0123456789abcdef\u{1f}\"]}", 23),
            (r#"{,}"#, 1),
            (r#"{"a":1,}"#, 7),
            (r#"{"a"::1}"#, 5),
            (r#"{"a":1 "k":[]}"#, 7),
            (r#"{1:2}"#, 1),
            (r#"{"k":[],}"#, 8),
            ("\u{feff}{\"k\":[]}", 0),
        ] {
            assert!(Json::parse(doc.as_bytes()).is_err(), "{doc}");
            match fault(doc, "k", 100) {
                Fault::Syntax { offset, .. } => assert_eq!(offset, at, "{doc}"),
                other => panic!("{doc}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_callback_error_is_passed_through_and_stops_the_splitter() {
        let mut s = ItemSplitter::new("k", 100);
        let mut seen = 0;
        let err = s
            .feed(br#"{"k":[1,2,3]}"#, |item| {
                seen += 1;
                if item == b"2" { Err("no 2") } else { Ok(()) }
            })
            .unwrap_err();
        assert!(matches!(err, SplitError::Callback("no 2")), "{err:?}");
        assert_eq!(seen, 2);
        assert_eq!(s.finish(), Err(Fault::Stopped));
        let again = s.feed(b"", |_| Ok::<(), &str>(())).unwrap_err();
        assert!(matches!(again, SplitError::Fault(Fault::Stopped)));
        assert_eq!(err.to_string(), "no 2");
    }

    #[test]
    fn errors_say_what_and_where() {
        let e: SplitError = Fault::Syntax {
            offset: 7,
            what: "expected ':' after a member name",
        }
        .into();
        assert_eq!(
            e.to_string(),
            "not JSON at byte 7: expected ':' after a member name"
        );
        assert_eq!(
            Fault::ItemTooLarge {
                index: 2,
                offset: 40,
                limit: 9
            }
            .to_string(),
            "item 2 (at byte 40) is longer than 9 bytes"
        );
    }

    #[test]
    fn an_item_inside_a_chunk_is_a_slice_of_it() {
        let doc = br#"{"k":[{"a":"b"}, 12]}"#;
        let mut s = ItemSplitter::new("k", 100);
        let mut ranges = Vec::new();
        s.feed(doc, |item| {
            ranges.push((item.as_ptr() as usize - doc.as_ptr() as usize, item.len()));
            Ok::<(), Infallible>(())
        })
        .unwrap();
        assert_eq!(ranges, [(6, 9), (17, 2)]);
        assert_eq!(s.buffer_capacity(), 0, "nothing copied");
    }

    #[test]
    fn ten_thousand_items_in_8_kib_chunks_hold_at_most_about_one_item() {
        let item = r#"{"id":"9b2c0000-0000-4000-8000-000000000000","kontaktgruppetype":2,"navn":"Køge \"101\" ]}","oprettetAf":{"organisationstype":1,"organisationskode":"101"},"slutdato":null}"#;
        let mut doc = String::from(r#"{"meta":{"total":10000},"kontaktgrupper":["#);
        for i in 0..10_000 {
            if i > 0 {
                doc.push(',');
            }
            doc.push_str(item);
        }
        doc.push_str(r#"],"next":null}"#);
        let mut s = ItemSplitter::new("kontaktgrupper", 64 * 1024);
        let mut count = 0;
        let mut most = 0;
        for chunk in doc.as_bytes().chunks(8192) {
            s.feed(chunk, |got| {
                assert_eq!(got, item.as_bytes());
                count += 1;
                Ok::<(), Infallible>(())
            })
            .unwrap();
            most = most.max(s.buffer_capacity());
        }
        assert_eq!(s.finish(), Ok(10_000));
        assert_eq!(count, 10_000);
        assert!(most > 0, "some items spanned chunks");
        assert!(
            most <= item.len(),
            "held {most} for items of {}",
            item.len()
        );
    }

    #[test]
    fn the_buffer_never_grows_past_the_bound() {
        let doc = format!(r#"{{"k":["{}"]}}"#, "x".repeat(1000));
        let mut s = ItemSplitter::new("k", 1002);
        for chunk in doc.as_bytes().chunks(7) {
            s.feed(chunk, |_| Ok::<(), Infallible>(())).unwrap();
            assert!(s.buffer_capacity() <= 1002);
        }
        assert_eq!(s.finish(), Ok(1));
    }

    /// A small deterministic generator of JSON documents (xorshift), to compare with
    /// `Json::parse` beyond the hand-written ones.
    struct Gen(u64);

    impl Gen {
        fn next(&mut self, below: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % below
        }

        fn value(&mut self, out: &mut String, depth: u32) {
            let pick = if depth > 4 {
                self.next(5)
            } else {
                self.next(7)
            };
            match pick {
                0 => out.push_str(["true", "false", "null"][self.next(3) as usize]),
                1 => out.push_str(["0", "-1", "12.5", "3e-7", "-0.25E+2"][self.next(5) as usize]),
                2..=4 => {
                    out.push('"');
                    for _ in 0..self.next(6) {
                        let parts = [
                            "a",
                            "]",
                            "}",
                            "[",
                            "{",
                            ",",
                            ":",
                            "\\\"",
                            "\\\\",
                            "\\u005d",
                            "ø",
                            "😀",
                            " ",
                            "\\n",
                            "kontaktgrupper",
                        ];
                        out.push_str(parts[self.next(parts.len() as u64) as usize]);
                    }
                    out.push('"');
                }
                5 => {
                    out.push('[');
                    for i in 0..self.next(4) {
                        if i > 0 {
                            out.push(',');
                        }
                        self.ws(out);
                        self.value(out, depth + 1);
                        self.ws(out);
                    }
                    out.push(']');
                }
                _ => {
                    out.push('{');
                    for i in 0..self.next(4) {
                        if i > 0 {
                            out.push(',');
                        }
                        let name = ["a", "kontaktgrupper", "b\\\"", "\\u006bontaktgrupper"];
                        out.push_str(&format!("\"{}\"", name[self.next(4) as usize]));
                        self.ws(out);
                        out.push(':');
                        self.value(out, depth + 1);
                    }
                    out.push('}');
                }
            }
        }

        fn ws(&mut self, out: &mut String) {
            out.push_str(["", "", " ", "\n\t"][self.next(4) as usize]);
        }
    }

    #[test]
    fn generated_documents_split_as_parse_reads_them_at_random_chunkings() {
        let mut g = Gen(0x9E37_79B9_7F4A_7C15);
        let mut corrupt_but_accepted = 0;
        for _ in 0..300 {
            let mut doc = String::from(r#"{"x":"#);
            g.value(&mut doc, 1);
            doc.push_str(r#","kontaktgrupper":["#);
            for i in 0..g.next(5) {
                if i > 0 {
                    doc.push(',');
                }
                g.value(&mut doc, 2);
            }
            doc.push_str(r#"],"y":"#);
            g.value(&mut doc, 1);
            doc.push('}');
            let bytes = doc.as_bytes();
            let whole = Json::parse(bytes).unwrap();
            let expected = whole.get("kontaktgrupper").unwrap().as_array().unwrap();
            let mut chunks = Vec::new();
            let mut rest = bytes;
            while !rest.is_empty() {
                let (a, b) = rest.split_at((g.next(40) as usize + 1).min(rest.len()));
                chunks.push(a);
                rest = b;
            }
            let (items, done) = split("kontaktgrupper", usize::MAX, chunks);
            assert_eq!(done, Ok(expected.len()), "{doc}");
            let got: Vec<_> = items.iter().map(|i| Json::parse(i).unwrap()).collect();
            assert_eq!(&got[..], expected, "{doc}");
            // Single-byte corruptions: never a panic, and where parse still reads the document,
            // the splitter agrees with it.
            for at in (0..bytes.len()).step_by(3) {
                let mut bad = bytes.to_vec();
                bad[at] = b"[]{}\",:\\ x1"[g.next(11) as usize];
                let (items, done) = split("kontaktgrupper", usize::MAX, bad.chunks(5));
                let Ok(parsed) = Json::parse(&bad) else {
                    continue;
                };
                // What parse reads as one object with the member once, as an array, the
                // splitter reads too, with the same items.
                let once = match &parsed {
                    Json::Obj(members) => {
                        members
                            .iter()
                            .filter(|(k, _)| k == "kontaktgrupper")
                            .count()
                            == 1
                    }
                    _ => false,
                };
                match parsed.get("kontaktgrupper").and_then(Json::as_array) {
                    Some(want) if once => {
                        assert_eq!(done, Ok(want.len()), "{}", String::from_utf8_lossy(&bad));
                        let got: Vec<_> = items.iter().map(|i| Json::parse(i).unwrap()).collect();
                        assert_eq!(&got[..], want);
                        corrupt_but_accepted += 1;
                    }
                    _ => assert!(done.is_err(), "{}", String::from_utf8_lossy(&bad)),
                }
            }
        }
        assert!(corrupt_but_accepted > 1000, "{corrupt_but_accepted}");
    }
}
