//! Writing SOAP answers: responses and faults, in the caller's SOAP version, straight into a
//! pre-sized buffer. Text is escaped here and nowhere else.

use quick_xml::escape::escape;

use super::SoapVersion;
use super::envelope::{DFDG, WSA};
use crate::mapping::{Canon, SoapValue};

/// Which side a fault blames: the caller (Client / Sender) or the server (Server / Receiver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

/// WS-Addressing headers of an answer to a request that had a MessageID.
#[derive(Debug, Clone)]
pub struct WsaReply<'a> {
    pub relates_to: &'a str,
    pub action: String,
    pub message_id: String,
}

fn open_envelope(out: &mut String, version: SoapVersion, wsa: Option<&WsaReply<'_>>) {
    out.push_str(r#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap=""#);
    out.push_str(version.envelope_ns());
    out.push_str(r#"">"#);
    if let Some(w) = wsa {
        out.push_str(r#"<soap:Header><wsa:Action xmlns:wsa=""#);
        out.push_str(WSA);
        out.push_str(r#"">"#);
        out.push_str(&escape(w.action.as_str()));
        out.push_str(r#"</wsa:Action><wsa:MessageID xmlns:wsa=""#);
        out.push_str(WSA);
        out.push_str(r#"">"#);
        out.push_str(&escape(w.message_id.as_str()));
        out.push_str(r#"</wsa:MessageID><wsa:RelatesTo xmlns:wsa=""#);
        out.push_str(WSA);
        out.push_str(r#"">"#);
        out.push_str(&escape(w.relates_to));
        out.push_str("</wsa:RelatesTo></soap:Header>");
    }
    out.push_str("<soap:Body>");
}

fn close_envelope(out: &mut String) {
    out.push_str("</soap:Body></soap:Envelope>");
}

/// The fields of one item (or of a response): each element's path and text.
pub type Fields<'p> = Vec<(&'p [String], String)>;

/// One part of a response, in document order.
#[derive(Debug, Clone)]
pub enum Out<'p> {
    /// An element with text, by its path below the response element.
    Leaf(&'p [String], String),
    /// A collection element with its repeated items; each item is a list of fields by
    /// their paths below the item. Written as `<Collection/>` when there are none.
    Collection {
        path: &'p [String],
        item: &'p str,
        items: Vec<Vec<(&'p [String], String)>>,
    },
}

fn open_tag(out: &mut String, prefix: Option<&str>, name: &str) {
    out.push('<');
    if let Some(p) = prefix {
        out.push_str(p);
        out.push(':');
    }
    out.push_str(name);
    out.push('>');
}

fn close_tag(out: &mut String, prefix: Option<&str>, name: &str) {
    out.push_str("</");
    if let Some(p) = prefix {
        out.push_str(p);
        out.push(':');
    }
    out.push_str(name);
    out.push('>');
}

/// Moves the open elements in `open` to `parents`: closes what differs, opens what is new.
fn move_to<'a>(
    out: &mut String,
    prefix: Option<&str>,
    open: &mut Vec<&'a str>,
    parents: &'a [String],
) {
    let common = open
        .iter()
        .zip(parents)
        .take_while(|(a, b)| **a == b.as_str())
        .count();
    while open.len() > common {
        if let Some(name) = open.pop() {
            close_tag(out, prefix, name);
        }
    }
    for p in &parents[common..] {
        open_tag(out, prefix, p);
        open.push(p);
    }
}

/// Fields by path, sharing enclosing elements, each name with `prefix` if given.
pub fn write_fields(out: &mut String, prefix: Option<&str>, fields: &[(&[String], String)]) {
    fields_with(out, prefix, fields, |out, text| push_escaped(out, text));
}

/// Fields by path as [`write_fields`] writes them, each text written by `text`.
fn fields_with<T>(
    out: &mut String,
    prefix: Option<&str>,
    fields: &[(&[String], T)],
    text: impl Fn(&mut String, &T),
) {
    let mut open: Vec<&str> = Vec::new();
    for (path, value) in fields {
        let Some((leaf, parents)) = path.split_last() else {
            continue;
        };
        move_to(out, prefix, &mut open, parents);
        open_tag(out, prefix, leaf);
        text(out, value);
        close_tag(out, prefix, leaf);
    }
    move_to(out, prefix, &mut open, &[]);
}

fn push_escaped(out: &mut String, text: &str) {
    out.push_str(&escape(text));
}

/// A value's text: a text escaped, any other value as it is (its digits, hyphens, colons
/// and signs are nothing XML escapes).
fn push_value(out: &mut String, value: &SoapValue<'_>) {
    match value {
        SoapValue::Text(s) => push_escaped(out, s),
        SoapValue::Canon(Canon::Text(s)) => push_escaped(out, s),
        SoapValue::Canon(c) => c.write_soap(out),
    }
}

/// The items of a collection, each `<item>` with its fields.
pub fn write_items(
    out: &mut String,
    prefix: Option<&str>,
    item: &str,
    items: &[Vec<(&[String], String)>],
) {
    for fields in items {
        open_tag(out, prefix, item);
        write_fields(out, prefix, fields);
        close_tag(out, prefix, item);
    }
}

/// One item, `<{item}>` with its fields' values written straight into `out`, each name
/// with `prefix` if given (an item spliced into a legacy answer).
pub fn write_item_values(
    out: &mut String,
    prefix: Option<&str>,
    item: &str,
    fields: &[(&[String], SoapValue<'_>)],
) {
    open_tag(out, prefix, item);
    fields_with(out, prefix, fields, push_value);
    close_tag(out, prefix, item);
}

/// A response written part by part, so that a large one can leave in chunks while its
/// collections are still being read: the envelope and the response element, then leaves and
/// collections in document order, each collection's items one at a time. A collection with
/// no item is written `<Collection/>`, which is known only at its end: its start tag waits
/// for its first item.
pub struct ResponseWriter<'p> {
    element: &'p str,
    /// The elements open below the response element.
    open: Vec<&'p str>,
    /// The collection being written: its name, and whether its start tag is out.
    collection: Option<(&'p str, bool)>,
}

impl<'p> ResponseWriter<'p> {
    /// Writes the envelope's start and `<{element} xmlns="{namespace}">`.
    pub fn start(
        out: &mut String,
        version: SoapVersion,
        namespace: &str,
        element: &'p str,
        wsa: Option<&WsaReply<'_>>,
    ) -> ResponseWriter<'p> {
        open_envelope(out, version, wsa);
        out.push('<');
        out.push_str(element);
        out.push_str(r#" xmlns=""#);
        out.push_str(&escape(namespace));
        out.push_str(r#"">"#);
        ResponseWriter {
            element,
            open: Vec::new(),
            collection: None,
        }
    }

    /// An element with text, by its path below the response element.
    pub fn leaf(&mut self, out: &mut String, path: &'p [String], text: &str) {
        let Some((leaf, parents)) = path.split_last() else {
            return;
        };
        move_to(out, None, &mut self.open, parents);
        open_tag(out, None, leaf);
        push_escaped(out, text);
        close_tag(out, None, leaf);
    }

    /// A collection starts (its items follow, then [`ResponseWriter::end_collection`]).
    pub fn start_collection(&mut self, out: &mut String, path: &'p [String]) {
        let Some((name, parents)) = path.split_last() else {
            return;
        };
        move_to(out, None, &mut self.open, parents);
        self.collection = Some((name, false));
    }

    /// One item of the current collection: `<{item}>`, its fields, `</{item}>`.
    pub fn item(&mut self, out: &mut String, item: &str, fields: &[(&[String], String)]) {
        self.open_item(out, item);
        write_fields(out, None, fields);
        close_tag(out, None, item);
    }

    /// [`ResponseWriter::item`] from the fields' values, each written straight into `out`.
    pub fn item_values(
        &mut self,
        out: &mut String,
        item: &str,
        fields: &[(&[String], SoapValue<'_>)],
    ) {
        self.open_item(out, item);
        fields_with(out, None, fields, push_value);
        close_tag(out, None, item);
    }

    /// `<{item}>`, after the collection's start tag if this is its first item.
    fn open_item(&mut self, out: &mut String, item: &str) {
        if let Some((name, started)) = &mut self.collection
            && !*started
        {
            open_tag(out, None, name);
            *started = true;
        }
        open_tag(out, None, item);
    }

    /// The current collection ends: `</Collection>`, or `<Collection/>` without items.
    pub fn end_collection(&mut self, out: &mut String) {
        match self.collection.take() {
            Some((name, true)) => close_tag(out, None, name),
            Some((name, false)) => {
                out.push('<');
                out.push_str(name);
                out.push_str("/>");
            }
            None => {}
        }
    }

    /// Closes what is open, the response element and the envelope.
    pub fn finish(mut self, out: &mut String) {
        self.end_collection(out);
        move_to(out, None, &mut self.open, &[]);
        close_tag(out, None, self.element);
        close_envelope(out);
    }
}

/// A response: `<{element} xmlns="{namespace}">` with its parts in order.
pub fn response(
    version: SoapVersion,
    namespace: &str,
    element: &str,
    parts: &[Out<'_>],
    wsa: Option<&WsaReply<'_>>,
) -> Vec<u8> {
    let mut out = String::with_capacity(512);
    let mut w = ResponseWriter::start(&mut out, version, namespace, element, wsa);
    for part in parts {
        match part {
            Out::Leaf(path, text) => w.leaf(&mut out, path, text),
            Out::Collection { path, item, items } => {
                w.start_collection(&mut out, path);
                for fields in items {
                    w.item(&mut out, item, fields);
                }
                w.end_collection(&mut out);
            }
        }
    }
    w.finish(&mut out);
    out.into_bytes()
}

/// A fault with every error in the dfdg:ServiceFault detail; the fault string is the first
/// error's text.
pub fn fault(
    version: SoapVersion,
    side: Side,
    errors: &[(u32, &str)],
    wsa: Option<&WsaReply<'_>>,
) -> Vec<u8> {
    let mut out = String::with_capacity(768);
    open_envelope(&mut out, version, wsa);
    let reason = errors.first().map(|(_, t)| *t).unwrap_or_default();
    match version {
        SoapVersion::V11 => {
            out.push_str("<soap:Fault><faultcode>");
            out.push_str(if side == Side::Client {
                "soap:Client"
            } else {
                "soap:Server"
            });
            out.push_str("</faultcode><faultstring>");
            out.push_str(&escape(reason));
            out.push_str("</faultstring><detail>");
        }
        SoapVersion::V12 => {
            out.push_str("<soap:Fault><soap:Code><soap:Value>");
            out.push_str(if side == Side::Client {
                "soap:Sender"
            } else {
                "soap:Receiver"
            });
            out.push_str(r#"</soap:Value></soap:Code><soap:Reason><soap:Text xml:lang="da">"#);
            out.push_str(&escape(reason));
            out.push_str("</soap:Text></soap:Reason><soap:Detail>");
        }
    }
    out.push_str(r#"<dfdg:ServiceFault xmlns:dfdg=""#);
    out.push_str(DFDG);
    out.push_str(r#"">"#);
    for (code, text) in errors {
        out.push_str("<dfdg:Error><dfdg:ErrorCode>");
        out.push_str(&code.to_string());
        out.push_str("</dfdg:ErrorCode><dfdg:ErrorText>");
        out.push_str(&escape(*text));
        out.push_str("</dfdg:ErrorText></dfdg:Error>");
    }
    out.push_str("</dfdg:ServiceFault>");
    out.push_str(if version == SoapVersion::V11 {
        "</detail></soap:Fault>"
    } else {
        "</soap:Detail></soap:Fault>"
    });
    close_envelope(&mut out);
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_fields_share_their_parents() {
        let p = |s: &str| s.split('/').map(str::to_owned).collect::<Vec<_>>();
        let (a, b, c) = (p("X/A"), p("X/B"), p("C"));
        let fields = [
            Out::Leaf(a.as_slice(), "1".to_owned()),
            Out::Leaf(b.as_slice(), "<2>".to_owned()),
            Out::Leaf(c.as_slice(), "3".to_owned()),
        ];
        let xml = String::from_utf8(response(
            SoapVersion::V11,
            "urn:n",
            "OpResponse",
            &fields,
            None,
        ))
        .unwrap();
        assert!(
            xml.contains(
                r#"<OpResponse xmlns="urn:n"><X><A>1</A><B>&lt;2&gt;</B></X><C>3</C></OpResponse>"#
            ),
            "{xml}"
        );
    }

    #[test]
    fn faults_in_both_versions() {
        let f11 = String::from_utf8(fault(
            SoapVersion::V11,
            Side::Client,
            &[(100028, "Slutdato kan ikke være fremtidig")],
            None,
        ))
        .unwrap();
        assert!(f11.contains("<faultcode>soap:Client</faultcode><faultstring>Slutdato kan ikke være fremtidig</faultstring>"), "{f11}");
        assert!(f11.contains("<dfdg:ErrorCode>100028</dfdg:ErrorCode>"));
        let f12 = String::from_utf8(fault(
            SoapVersion::V12,
            Side::Server,
            &[(900520, "x: y")],
            None,
        ))
        .unwrap();
        assert!(
            f12.contains("<soap:Value>soap:Receiver</soap:Value>"),
            "{f12}"
        );
        assert!(
            f12.contains(r#"<soap:Text xml:lang="da">x: y</soap:Text>"#),
            "{f12}"
        );
    }

    #[test]
    fn collections_are_written_with_their_items_or_empty() {
        let p = |s: &str| s.split('/').map(str::to_owned).collect::<Vec<_>>();
        let (id, coll, empty, x) = (p("P/Id"), p("P/KG"), p("P/PC"), p("A/B"));
        let parts = [
            Out::Leaf(id.as_slice(), "1".into()),
            Out::Collection {
                path: coll.as_slice(),
                item: "G",
                items: vec![vec![(x.as_slice(), "b".into())], vec![]],
            },
            Out::Collection {
                path: empty.as_slice(),
                item: "C",
                items: vec![],
            },
        ];
        let xml =
            String::from_utf8(response(SoapVersion::V12, "urn:n", "R", &parts, None)).unwrap();
        assert!(xml.contains(r#"<R xmlns="urn:n"><P><Id>1</Id><KG><G><A><B>b</B></A></G><G></G></KG><PC/></P></R>"#), "{xml}");
    }
}
