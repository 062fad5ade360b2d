//! A strict, namespace-aware XML parse into a flat list of elements, for reading SOAP
//! answers and WSDL documents.
#![allow(dead_code)]

use quick_xml::XmlVersion;
use quick_xml::events::Event;
use quick_xml::name::{QName, ResolveResult};
use quick_xml::reader::NsReader;

/// An XML document as a flat list of elements (the root first).
#[derive(Debug)]
pub struct Doc {
    pub els: Vec<El>,
}

#[derive(Debug)]
pub struct El {
    pub ns: String,
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub parent: Option<usize>,
    /// The text as a QName resolved in the element's scope, if it is one.
    pub qname: Option<(String, String)>,
}

impl Doc {
    pub fn children(&self, parent: usize) -> Vec<usize> {
        (0..self.els.len())
            .filter(|i| self.els[*i].parent == Some(parent))
            .collect()
    }

    pub fn child(&self, parent: usize, ns: &str, name: &str) -> Option<usize> {
        self.children(parent)
            .into_iter()
            .find(|i| self.els[*i].ns == ns && self.els[*i].name == name)
    }

    pub fn all(&self, ns: &str, name: &str) -> Vec<&El> {
        self.els
            .iter()
            .filter(|e| e.ns == ns && e.name == name)
            .collect()
    }
}

impl El {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A namespace-aware, strict parse: balanced tags, one root, known prefixes, only the
/// predefined entities, no DOCTYPE.
pub fn parse_xml(xml: &str) -> Result<Doc, String> {
    let mut r = NsReader::from_str(xml);
    r.config_mut().expand_empty_elements = true;
    r.config_mut().check_end_names = true;
    let mut els: Vec<El> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    loop {
        let (ns, ev) = r.read_resolved_event().map_err(|e| e.to_string())?;
        match ev {
            Event::Start(e) => {
                if stack.is_empty() && !els.is_empty() {
                    return Err("more than one root element".into());
                }
                let ns = match ns {
                    ResolveResult::Bound(n) => n.0.to_owned(),
                    ResolveResult::Unbound => String::new(),
                    ResolveResult::Unknown(p) => return Err(format!("unknown prefix {p}")),
                };
                let mut attrs = Vec::new();
                for a in e.attributes() {
                    let a = a.map_err(|e| e.to_string())?;
                    let value = a
                        .normalized_value(XmlVersion::Implicit1_0)
                        .map_err(|e| e.to_string())?;
                    attrs.push((
                        a.key.local_name().into_inner().to_owned(),
                        value.into_owned(),
                    ));
                }
                els.push(El {
                    ns,
                    name: e.local_name().into_inner().to_owned(),
                    attrs,
                    text: String::new(),
                    parent: stack.last().copied(),
                    qname: None,
                });
                stack.push(els.len() - 1);
            }
            Event::End(_) => {
                let i = stack.pop().ok_or("an end tag without a start")?;
                let t = els[i].text.trim().to_owned();
                if t.contains(':') && !t.contains(char::is_whitespace) {
                    let (res, local) = r.resolver().resolve_element(QName(&t));
                    if let ResolveResult::Bound(n) = res {
                        els[i].qname = Some((n.0.to_owned(), local.into_inner().to_owned()));
                    }
                }
            }
            Event::Text(t) => {
                if let Some(&i) = stack.last() {
                    els[i].text.push_str(&t.xml10_content());
                } else if !t.xml10_content().trim().is_empty() {
                    return Err("text outside the root".into());
                }
            }
            Event::CData(c) => {
                let i = *stack.last().ok_or("CDATA outside the root")?;
                els[i].text.push_str(&c.into_inner());
            }
            Event::GeneralRef(g) => {
                let ch = match g.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c,
                    None => match &*g {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        other => return Err(format!("entity &{other}; is not predefined")),
                    },
                };
                let i = *stack.last().ok_or("a reference outside the root")?;
                els[i].text.push(ch);
            }
            Event::DocType(_) => return Err("a DOCTYPE".into()),
            Event::Eof => break,
            Event::Empty(_) | Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    if els.is_empty() {
        return Err("no root element".into());
    }
    Ok(Doc { els })
}
