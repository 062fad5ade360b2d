//! The legacy splice: the legacy service's SOAP response with the content of some
//! collections replaced, and every other byte kept as it was (other collections, prefixes,
//! namespace declarations, comments, whitespace). [`Splicer`] reads the legacy bytes as they
//! arrive (sans-IO: the driver feeds chunks and asks for the next step), one streaming pass
//! with quick-xml: bytes are copied through by position; where a replaced collection opens,
//! it stops and lets the caller write that collection's items (the REST answer, transcoded
//! as it arrives); the legacy inside of the collection is skipped (and, for the shadow
//! compare, read into a small list of item fields).
//!
//! quick-xml parses only bytes that end with a complete piece of markup (the `>` that
//! ends a tag, comment, CDATA section or processing instruction, found by the same rules
//! quick-xml uses), so no event is ever cut by a chunk's end; what waits for its `>` is
//! bounded by [`MAX_PENDING_BYTES`].

use std::io::{self, BufRead, Read};

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::parser::{ElementParser, Parser, PiParser};
use quick_xml::reader::NsReader;

use super::resolve_reference;

/// One legacy item, as its child elements' (local name path, text), for the shadow compare.
pub type LegacyItem = Vec<(String, String)>;

/// The most legacy bytes held that cannot be parsed yet: the longest piece of markup or text
/// before its `>` (a legacy answer's text nodes are short).
pub const MAX_PENDING_BYTES: usize = 1 << 20;

/// What the caller does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Every byte fed so far is handled: feed the next chunk ([`Splicer::feed`]), or say
    /// that the answer ended ([`Splicer::end`]).
    More,
    /// The start of collection `index` is written: write its items (each name with
    /// `prefix`, the collection's own), then ask for the next step.
    Collection {
        index: usize,
        prefix: Option<String>,
    },
    /// The answer ended and all of it is written.
    Done,
}

/// The legacy answer spliced as it arrives: bytes in ([`Splicer::feed`]), the spliced
/// answer out ([`Splicer::next`]), with a stop where each replaced collection's items go.
/// Collections are elements of `namespace` (at any depth) with one of the local names given;
/// each may appear once.
pub struct Splicer<'a> {
    namespace: &'a str,
    collections: Vec<&'a str>,
    reader: NsReader<Tape>,
    buf: Vec<u8>,
    lex: Lex,
    /// The stream position up to which the answer is copied (or skipped).
    copied: u64,
    /// While inside a replaced collection: (which, depth below it).
    inside: Option<(usize, usize)>,
    /// Every open element, to know the document is complete at its end.
    open: usize,
    /// The end tag of a collection the legacy answer wrote as an empty element, written
    /// after its items.
    close: Option<String>,
    seen: Vec<bool>,
    ended: bool,
    done: bool,
    /// With the shadow compare: the legacy items, at most `keep` per collection.
    keep: Option<usize>,
    legacy_items: Vec<Vec<LegacyItem>>,
    overflow: bool,
    item: LegacyItem,
    path: Vec<String>,
    text: String,
}

impl<'a> Splicer<'a> {
    /// A splice of the collections named `collections` (local names in `namespace`). With
    /// `keep`, the legacy items of each are kept (at most that many) for the shadow compare.
    pub fn new(namespace: &'a str, collections: Vec<&'a str>, keep: Option<usize>) -> Self {
        let n = collections.len();
        Splicer {
            namespace,
            collections,
            reader: NsReader::from_reader(Tape::default()),
            buf: Vec::new(),
            lex: Lex::Text,
            copied: 0,
            inside: None,
            open: 0,
            close: None,
            seen: vec![false; n],
            ended: false,
            done: false,
            keep,
            legacy_items: vec![Vec::new(); n],
            overflow: false,
            item: Vec::new(),
            path: Vec::new(),
            text: String::new(),
        }
    }

    /// The next bytes of the legacy answer.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        let tape = self.reader.get_mut();
        tape.data.extend_from_slice(chunk);
        if let Some(end) = scan(&mut self.lex, &tape.data[tape.scanned..]) {
            tape.cut = tape.scanned + end;
        }
        tape.scanned = tape.data.len();
        if tape.data.len() - tape.cut > MAX_PENDING_BYTES {
            return Err(format!(
                "the legacy response has over {MAX_PENDING_BYTES} bytes without markup"
            ));
        }
        Ok(())
    }

    /// The legacy answer ended: what is left is parsed to its end.
    pub fn end(&mut self) {
        self.ended = true;
        let tape = self.reader.get_mut();
        tape.cut = tape.data.len();
    }

    /// Writes to `out` what can be written now, up to the next stop.
    pub fn next(&mut self, out: &mut String) -> Result<Step, String> {
        let mut buf = std::mem::take(&mut self.buf);
        let step = self.run(&mut buf, out);
        buf.clear();
        self.buf = buf;
        step
    }

    /// The legacy items of each collection (empty without `keep`), and whether a collection
    /// had more than `keep`.
    pub fn legacy_items(self) -> (Vec<Vec<LegacyItem>>, bool) {
        (self.legacy_items, self.overflow)
    }

    fn run(&mut self, buf: &mut Vec<u8>, out: &mut String) -> Result<Step, String> {
        if let Some(close) = self.close.take() {
            out.push_str(&close);
        }
        let not_xml = |e: quick_xml::Error| format!("the legacy response is not XML: {e}");
        loop {
            if self.done {
                return Ok(Step::Done);
            }
            let before = self.reader.buffer_position();
            if !self.ended && before >= self.reader.get_ref().cut_position() {
                self.advance(before, out)?;
                self.reader.get_mut().forget(self.copied);
                return Ok(Step::More);
            }
            buf.clear();
            let (ns, event) = self.reader.read_resolved_event_into(buf).map_err(not_xml)?;
            let ours = matches!(ns, ResolveResult::Bound(n) if n.0 == self.namespace);
            let after = self.reader.buffer_position();
            match &event {
                Event::Start(_) => self.open += 1,
                Event::End(_) => self.open = self.open.saturating_sub(1),
                _ => {}
            }
            let keep = self.keep.is_some();
            match (&mut self.inside, event) {
                (None, Event::Start(e)) if ours => {
                    if let Some(index) = self.collection(e.local_name().as_ref())? {
                        self.advance(after, out)?;
                        self.inside = Some((index, 0));
                        let prefix = prefix_of(&e.name());
                        return Ok(Step::Collection { index, prefix });
                    }
                }
                (None, Event::Empty(e)) if ours => {
                    if let Some(index) = self.collection(e.local_name().as_ref())? {
                        self.advance(before, out)?;
                        // `<p:X a="b"/>` → `<p:X a="b">` items `</p:X>`.
                        let tag = self.reader.get_ref().text(before, after)?;
                        out.push_str(tag.trim_end_matches('>').trim_end_matches('/').trim_end());
                        out.push('>');
                        self.copied = after;
                        let qname = e.name();
                        self.close = Some(format!("</{}>", qname.as_ref()));
                        let prefix = prefix_of(&qname);
                        return Ok(Step::Collection { index, prefix });
                    }
                }
                (Some((i, depth)), Event::Start(e)) => {
                    *depth += 1;
                    if *depth > 1 {
                        if keep {
                            self.path.push(e.local_name().as_ref().to_owned());
                        }
                    } else {
                        self.item.clear();
                    }
                    self.text.clear();
                    let _ = i;
                }
                (Some((i, depth)), Event::End(_)) => {
                    if *depth == 0 {
                        // The collection's own end tag: the legacy inside is skipped.
                        self.skip(before)?;
                        self.inside = None;
                    } else {
                        if keep {
                            if *depth == 1 {
                                let item = std::mem::take(&mut self.item);
                                let items = &mut self.legacy_items[*i];
                                keep_item(items, self.keep, &mut self.overflow, item);
                            } else {
                                self.item
                                    .push((self.path.join("/"), self.text.trim().to_owned()));
                                self.path.pop();
                            }
                        }
                        *depth -= 1;
                        self.text.clear();
                    }
                }
                (Some(_), Event::Text(t)) if keep => self.text.push_str(&t.xml10_content()),
                (Some(_), Event::CData(c)) if keep => self.text.push_str(&c.into_inner()),
                // Resolved wherever it is: an unknown entity or a reference to no character
                // makes the answer not XML (nothing may declare an entity: a DOCTYPE is
                // refused), and passing it on would hand the caller a document its parser
                // refuses.
                (state, Event::GeneralRef(r)) => {
                    let c = resolve_reference(&r)
                        .map_err(|e| format!("the legacy response is not XML: {e}"))?;
                    if state.is_some() && keep {
                        self.text.push(c);
                    }
                }
                (Some((i, depth)), Event::Empty(e)) if keep => {
                    if *depth == 0 {
                        let items = &mut self.legacy_items[*i];
                        keep_item(items, self.keep, &mut self.overflow, Vec::new());
                    } else {
                        let mut p = self.path.join("/");
                        if !p.is_empty() {
                            p.push('/');
                        }
                        p.push_str(e.local_name().as_ref());
                        self.item.push((p, String::new()));
                    }
                }
                (_, Event::DocType(_)) => return Err("the legacy response has a DOCTYPE".into()),
                (_, Event::Eof) => {
                    if self.inside.is_some() || self.open > 0 {
                        return Err(
                            "the legacy response ends before its elements are closed".into()
                        );
                    }
                    let end = self.reader.get_ref().end_position();
                    self.advance(end, out)?;
                    self.done = true;
                    return Ok(Step::Done);
                }
                _ => {}
            }
            if self.inside.is_some() {
                self.skip(after)?;
            }
        }
    }

    /// The collection named `local`, if it is one; a second one is refused (its REST
    /// answer was read for the first).
    fn collection(&mut self, local: &str) -> Result<Option<usize>, String> {
        let Some(i) = self.collections.iter().position(|c| *c == local) else {
            return Ok(None);
        };
        if std::mem::replace(&mut self.seen[i], true) {
            return Err(format!(
                "the legacy response has {} twice",
                self.collections[i]
            ));
        }
        Ok(Some(i))
    }

    /// Copies the answer up to `to` (or, inside a replaced collection, skips it).
    fn advance(&mut self, to: u64, out: &mut String) -> Result<(), String> {
        if self.inside.is_some() {
            return self.skip(to);
        }
        out.push_str(self.reader.get_ref().text(self.copied, to)?);
        self.copied = to;
        Ok(())
    }

    /// Skips the answer up to `to` (still UTF-8, like every byte of it).
    fn skip(&mut self, to: u64) -> Result<(), String> {
        self.reader.get_ref().text(self.copied, to)?;
        self.copied = to;
        Ok(())
    }
}

/// Keeps a legacy item for the shadow compare, at most `keep` of a collection.
fn keep_item(
    items: &mut Vec<LegacyItem>,
    keep: Option<usize>,
    overflow: &mut bool,
    item: LegacyItem,
) {
    if keep.is_some_and(|k| items.len() < k) {
        items.push(item);
    } else {
        *overflow = true;
    }
}

/// The prefix of a qualified name, if it has one.
fn prefix_of(name: &quick_xml::name::QName<'_>) -> Option<String> {
    name.prefix().map(|p| p.as_ref().to_owned())
}

/// The legacy bytes not yet copied or skipped, as quick-xml's input: it reads only up to
/// `cut`, the end of the last complete piece of markup (the answer's end, once it ended).
#[derive(Default)]
struct Tape {
    data: Vec<u8>,
    /// The stream position of `data[0]`.
    base: u64,
    /// How much of `data` quick-xml has consumed.
    read: usize,
    /// How much of `data` quick-xml may read.
    cut: usize,
    /// How much of `data` the markup scan has seen.
    scanned: usize,
}

impl Tape {
    fn cut_position(&self) -> u64 {
        self.base + self.cut as u64
    }

    fn end_position(&self) -> u64 {
        self.base + self.data.len() as u64
    }

    /// The answer's text between two stream positions.
    fn text(&self, from: u64, to: u64) -> Result<&str, String> {
        let index = |p: u64| usize::try_from(p.saturating_sub(self.base)).unwrap_or(usize::MAX);
        let bytes = self
            .data
            .get(index(from)..index(to))
            .ok_or_else(|| "the legacy splice lost its place".to_owned())?;
        std::str::from_utf8(bytes).map_err(|_| "the legacy response is not UTF-8".to_owned())
    }

    /// Drops what is before stream position `to` (copied or skipped), once it is worth it.
    fn forget(&mut self, to: u64) {
        let n = usize::try_from(to.saturating_sub(self.base))
            .unwrap_or(usize::MAX)
            .min(self.read);
        if n == 0 || (n < 16 * 1024 && n * 2 < self.data.len()) {
            return;
        }
        self.data.drain(..n);
        self.base += n as u64;
        self.read -= n;
        self.cut -= n;
        self.scanned -= n;
    }
}

impl Read for Tape {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Tape {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        Ok(self.data.get(self.read..self.cut).unwrap_or_default())
    }

    fn consume(&mut self, n: usize) {
        self.read = (self.read + n).min(self.cut);
    }
}

/// Where the markup scan is, between chunks.
#[derive(Debug, Clone, Copy)]
enum Lex {
    Text,
    /// Just after `<`.
    Lt,
    /// Just after `<!`.
    Bang,
    /// A start or end tag (quoted `>` does not end it).
    Element(ElementParser),
    Pi(PiParser),
    /// `at`: the offset of the next byte from the `<`; `dashes`: how many `-` precede it.
    Comment {
        at: usize,
        dashes: u8,
    },
    CData {
        brackets: u8,
    },
    /// A DOCTYPE or a `<!` that is none of the above: nothing more is parsed before the
    /// answer's end (where it is refused).
    Stuck,
}

/// Scans `bytes` on from `lex`: the index just after the last complete piece of markup in
/// them, if one ends there. quick-xml's own rules: a tag ends at a `>` outside quotes, a
/// processing instruction at `?>`, a CDATA section at `]]>`, a comment at `-->` at least six
/// bytes after its `<`.
fn scan(lex: &mut Lex, bytes: &[u8]) -> Option<usize> {
    let mut cut = None;
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        match lex {
            Lex::Text => match rest.iter().position(|&b| b == b'<') {
                Some(k) => {
                    i += k + 1;
                    *lex = Lex::Lt;
                }
                None => break,
            },
            Lex::Lt => {
                *lex = match rest[0] {
                    b'!' => {
                        i += 1;
                        Lex::Bang
                    }
                    b'?' => Lex::Pi(PiParser::default()),
                    _ => Lex::Element(ElementParser::Outside),
                }
            }
            Lex::Bang => {
                *lex = match rest[0] {
                    b'-' => Lex::Comment { at: 2, dashes: 0 },
                    b'[' => Lex::CData { brackets: 0 },
                    _ => Lex::Stuck,
                }
            }
            Lex::Element(p) => match p.feed(rest) {
                Some(k) => {
                    i += k + 1;
                    cut = Some(i);
                    *lex = Lex::Text;
                }
                None => break,
            },
            Lex::Pi(p) => match p.feed(rest) {
                Some(k) => {
                    i += k + 1;
                    cut = Some(i);
                    *lex = Lex::Text;
                }
                None => break,
            },
            Lex::Comment { at, dashes } => {
                let b = rest[0];
                i += 1;
                if b == b'>' && *at > 5 && *dashes >= 2 {
                    cut = Some(i);
                    *lex = Lex::Text;
                    continue;
                }
                *at += 1;
                *dashes = if b == b'-' { (*dashes + 1).min(2) } else { 0 };
            }
            Lex::CData { brackets } => {
                let b = rest[0];
                i += 1;
                if b == b'>' && *brackets >= 2 {
                    cut = Some(i);
                    *lex = Lex::Text;
                    continue;
                }
                *brackets = if b == b']' { (*brackets + 1).min(2) } else { 0 };
            }
            Lex::Stuck => break,
        }
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soap::write::{Fields, write_items};

    /// What to put into one collection of the legacy response.
    struct Replacement<'a> {
        local: &'a str,
        item: &'a str,
        items: &'a [Fields<'a>],
    }

    struct Spliced {
        body: Vec<u8>,
        legacy_items: Vec<Vec<LegacyItem>>,
    }

    /// Drives `s` over `text` fed in chunks of `size` bytes; `at` writes a collection's
    /// items. The spliced answer.
    pub(super) fn drive(
        s: &mut Splicer<'_>,
        text: &str,
        size: usize,
        mut at: impl FnMut(usize, Option<String>, &mut String),
    ) -> Result<String, String> {
        let mut out = String::new();
        let mut chunks = text.as_bytes().chunks(size.max(1));
        loop {
            match s.next(&mut out)? {
                Step::More => match chunks.next() {
                    Some(c) => s.feed(c)?,
                    None => s.end(),
                },
                Step::Collection { index, prefix } => at(index, prefix, &mut out),
                Step::Done => return Ok(out),
            }
        }
    }

    /// The splice of `legacy` fed in chunks of `size` bytes.
    fn splice_in(
        legacy: &str,
        namespace: &str,
        replacements: &[Replacement<'_>],
        size: usize,
    ) -> Result<Spliced, String> {
        let locals = replacements.iter().map(|r| r.local).collect();
        let mut s = Splicer::new(namespace, locals, Some(usize::MAX));
        let out = drive(&mut s, legacy, size, |index, prefix, out| {
            let r = &replacements[index];
            write_items(out, prefix.as_deref(), r.item, r.items);
        })?;
        Ok(Spliced {
            body: out.into_bytes(),
            legacy_items: s.legacy_items().0,
        })
    }

    /// The splice of `legacy` fed whole, checked equal to the same fed in every smaller
    /// chunk size (no piece of markup is parsed before its end has arrived).
    fn splice(
        legacy: &str,
        namespace: &str,
        replacements: &[Replacement<'_>],
    ) -> Result<Spliced, String> {
        let whole = splice_in(legacy, namespace, replacements, legacy.len());
        for size in [1, 2, 3, 5, 7, 16, 64, 333] {
            let chunked = splice_in(legacy, namespace, replacements, size);
            match (&whole, &chunked) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a.body, b.body, "chunks of {size}");
                    assert_eq!(a.legacy_items, b.legacy_items, "chunks of {size}");
                }
                (Err(_), Err(_)) => {}
                _ => panic!("chunks of {size}: {:?}", chunked.as_ref().err()),
            }
        }
        whole
    }

    const LEGACY: &str = r#"<?xml version="1.0"?>
<!-- legacy says hello -->
<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body>
  <ps:GetVariablePersonStatusResponse xmlns:ps="urn:ps">
    <ps:PersonStatus>
      <ps:PersonCivilRegistrationIdentifier>0101701111</ps:PersonCivilRegistrationIdentifier>
      <ps:ContactGroupCollection count="1">
        <ps:ContactGroup><ps:ContactGroupIdentifier>a</ps:ContactGroupIdentifier><ps:X>1 &amp; 2</ps:X></ps:ContactGroup>
      </ps:ContactGroupCollection>
      <PersonCategoryCollection xmlns="urn:ps" />
      <o:AbsenceCollection xmlns:o="urn:other"><o:Absence>keep &lt;me&gt;</o:Absence></o:AbsenceCollection>
    </ps:PersonStatus>
  </ps:GetVariablePersonStatusResponse>
</S:Body></S:Envelope>"#;

    #[test]
    fn only_the_named_collections_change() {
        let id = vec!["ContactGroupIdentifier".to_owned()];
        let kg = vec![
            vec![(id.as_slice(), "new-1".to_owned())],
            vec![(id.as_slice(), "new-2".to_owned())],
        ];
        let pc: Vec<Vec<(&[String], String)>> = vec![vec![(id.as_slice(), "pc".to_owned())]];
        let r = [
            Replacement {
                local: "ContactGroupCollection",
                item: "ContactGroup",
                items: &kg,
            },
            Replacement {
                local: "PersonCategoryCollection",
                item: "PersonCategory",
                items: &pc,
            },
        ];
        let s = splice(LEGACY, "urn:ps", &r).unwrap();
        let body = String::from_utf8(s.body).unwrap();
        let expected = LEGACY
            .replace(
                "\n        <ps:ContactGroup><ps:ContactGroupIdentifier>a</ps:ContactGroupIdentifier><ps:X>1 &amp; 2</ps:X></ps:ContactGroup>\n      ",
                "<ps:ContactGroup><ps:ContactGroupIdentifier>new-1</ps:ContactGroupIdentifier></ps:ContactGroup><ps:ContactGroup><ps:ContactGroupIdentifier>new-2</ps:ContactGroupIdentifier></ps:ContactGroup>",
            )
            .replace(
                r#"<PersonCategoryCollection xmlns="urn:ps" />"#,
                r#"<PersonCategoryCollection xmlns="urn:ps"><PersonCategory><ContactGroupIdentifier>pc</ContactGroupIdentifier></PersonCategory></PersonCategoryCollection>"#,
            );
        assert_eq!(body, expected);
        assert_eq!(
            s.legacy_items[0],
            vec![vec![
                ("ContactGroupIdentifier".to_owned(), "a".to_owned()),
                ("X".to_owned(), "1 & 2".to_owned())
            ]]
        );
        assert!(s.legacy_items[1].is_empty());
    }

    /// The contact groups emptied, nothing else replaced.
    fn emptied_kg() -> [Replacement<'static>; 1] {
        [Replacement {
            local: "ContactGroupCollection",
            item: "ContactGroup",
            items: &[],
        }]
    }

    #[test]
    fn empty_replacements_empty_the_collections_and_keep_the_rest() {
        let r = emptied_kg();
        let body = String::from_utf8(splice(LEGACY, "urn:ps", &r).unwrap().body).unwrap();
        assert!(
            body.contains(r#"<ps:ContactGroupCollection count="1"></ps:ContactGroupCollection>"#),
            "{body}"
        );
        assert!(body.contains("<!-- legacy says hello -->") && body.contains("keep &lt;me&gt;"));
        assert!(splice("<a><b>", "urn:ps", &r).is_err());
    }

    #[test]
    fn a_reference_to_nothing_is_refused_not_dropped() {
        let r = emptied_kg();
        // Inside a replaced collection (read for the shadow compare) and outside it (copied).
        for bad in ["&nbsp;", "&#0;", "&#xD800;", "&foo;"] {
            for legacy in [
                LEGACY.replace("1 &amp; 2", &format!("1 {bad} 2")),
                LEGACY.replace("keep &lt;me&gt;", &format!("keep {bad}")),
            ] {
                let e = splice(&legacy, "urn:ps", &r).err();
                assert!(
                    e.as_deref()
                        .is_some_and(|e| e.starts_with("the legacy response is not XML")),
                    "{bad}: {e:?}"
                );
            }
        }
        assert!(
            splice(&LEGACY.replace("1 &amp; 2", "&#230;&quot;"), "urn:ps", &r)
                .is_ok_and(|s| s.legacy_items[0][0][1] == ("X".to_owned(), "æ\"".to_owned()))
        );
    }
}

#[cfg(test)]
mod markup {
    use super::*;

    /// Every tricky end of markup: `>` in quoted attribute values, in comments (also right
    /// after `<!--`), in CDATA and in processing instructions.
    const TRICKY: &str = r#"<?xml version="1.0"?><?pi a > b ?><!-- x > y -- > --><!---->
<s:E xmlns:s="urn:s" xmlns:p="urn:ps"><p:C a="1 > 0" b='>'><p:I><p:F><![CDATA[ a > ] ]> b]]></p:F></p:I></p:C>
<p:K q=">"/><x><!--->--> &amp; &#230; > text</x></s:E>
"#;

    fn run(size: usize, text: &str) -> Result<(String, Vec<Vec<LegacyItem>>), String> {
        let mut s = Splicer::new("urn:ps", vec!["C", "K"], Some(10));
        let out = super::tests::drive(&mut s, text, size, |index, prefix, out| {
            out.push_str(&format!("[{index} {prefix:?}]"));
        })?;
        Ok((out, s.legacy_items().0))
    }

    #[test]
    fn markup_is_parsed_only_once_it_is_complete() {
        let (whole, items) = run(TRICKY.len(), TRICKY).unwrap();
        assert_eq!(
            whole,
            TRICKY
                .replace(
                    r#"<p:I><p:F><![CDATA[ a > ] ]> b]]></p:F></p:I>"#,
                    r#"[0 Some("p")]"#
                )
                .replace(r#"<p:K q=">"/>"#, r#"<p:K q=">">[1 Some("p")]</p:K>"#)
        );
        assert_eq!(
            items[0],
            vec![vec![("F".to_owned(), "a > ] ]> b".to_owned())]]
        );
        for size in 1..40 {
            assert_eq!(run(size, TRICKY).unwrap().0, whole, "chunks of {size}");
        }
    }

    #[test]
    fn a_collection_twice_or_a_doctype_is_refused() {
        let twice = r#"<a xmlns="urn:ps"><C/><C></C></a>"#;
        assert!(run(3, twice).is_err_and(|e| e.contains("twice")));
        let doctype = r#"<!DOCTYPE a [<!ENTITY x "y">]><a xmlns="urn:ps">&x;</a>"#;
        for size in [1, 4, doctype.len()] {
            assert!(
                run(size, doctype).is_err_and(|e| e.contains("DOCTYPE")),
                "{size}"
            );
        }
    }

    #[test]
    fn what_waits_for_its_end_is_bounded() {
        let mut s = Splicer::new("urn:ps", vec!["C"], None);
        let mut out = String::new();
        assert_eq!(s.next(&mut out), Ok(Step::More));
        s.feed(b"<a>").unwrap();
        let text = vec![b'x'; 64 * 1024];
        let mut fed = 0;
        let refused = loop {
            if let Err(e) = s.feed(&text) {
                break e;
            }
            fed += text.len();
            assert_eq!(s.next(&mut out), Ok(Step::More));
            assert!(fed <= MAX_PENDING_BYTES);
        };
        assert!(refused.contains("without markup"), "{refused}");
        assert_eq!(out, "<a>");
    }
}
