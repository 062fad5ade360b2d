//! What `check` and start-up need to know of a WSDL: its operations with their SOAP actions
//! and, from the inline XSD, the element tree of every request and response (names,
//! sequence order, types, occurrences). Read once at start into a small tree; the request
//! path never sees this module.

use std::collections::HashMap;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

const XSD: &str = "http://www.w3.org/2001/XMLSchema";
const WSDL: &str = "http://schemas.xmlsoap.org/wsdl/";
const SOAP11_BIND: &str = "http://schemas.xmlsoap.org/wsdl/soap/";
const SOAP12_BIND: &str = "http://schemas.xmlsoap.org/wsdl/soap12/";

/// An element of the WSDL document, kept only at start-up.
#[derive(Debug, Default)]
struct Node {
    ns: String,
    local: String,
    attrs: Vec<(String, String)>,
    children: Vec<Node>,
}

impl Node {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn kids<'a>(&'a self, ns: &'a str, local: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children
            .iter()
            .filter(move |c| c.ns == ns && c.local == local)
    }
    fn descendants<'a>(&'a self, ns: &'a str, local: &'a str, out: &mut Vec<&'a Node>) {
        for c in &self.children {
            if c.ns == ns && c.local == local {
                out.push(c);
            }
            c.descendants(ns, local, out);
        }
    }
}

fn node(e: &BytesStart<'_>, ns: ResolveResult<'_>) -> Result<Node, String> {
    let ns = match ns {
        ResolveResult::Bound(n) => n.0.to_owned(),
        _ => String::new(),
    };
    let mut n = Node {
        ns,
        local: e.local_name().as_ref().to_owned(),
        ..Node::default()
    };
    for a in e.attributes() {
        let a = a.map_err(|e| e.to_string())?;
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| e.to_string())?
            .into_owned();
        n.attrs
            .push((a.key.local_name().as_ref().to_owned(), value));
    }
    Ok(n)
}

fn parse_tree(text: &str) -> Result<Node, String> {
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Node> = vec![Node::default()];
    loop {
        let pos = reader.buffer_position();
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| format!("XML error near byte {pos}: {e}"))?;
        match event {
            Event::Start(e) => stack.push(node(&e, ns)?),
            Event::Empty(e) => {
                let n = node(&e, ns)?;
                stack.last_mut().ok_or("unbalanced tags")?.children.push(n);
            }
            Event::End(_) => {
                let n = stack.pop().ok_or("unbalanced tags")?;
                stack.last_mut().ok_or("unbalanced tags")?.children.push(n);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut doc = stack.pop().ok_or("empty document")?;
    doc.children
        .pop()
        .ok_or_else(|| "no root element".to_owned())
}

/// A local name from a QName attribute value ("xs:int" → "int").
fn local(qname: &str) -> &str {
    qname.rsplit(':').next().unwrap_or(qname)
}

/// One child element of a sequence.
#[derive(Debug, Clone)]
pub struct Particle {
    pub name: String,
    /// The XSD built-in type at the leaf (after simple type restrictions), or None for a
    /// complex element.
    pub builtin: Option<String>,
    pub children: Vec<Particle>,
    pub min: u32,
    /// None: unbounded.
    pub max: Option<u32>,
}

/// An operation of the WSDL's port type, with the SOAPAction of each binding.
#[derive(Debug, Clone)]
pub struct WsdlOperation {
    pub name: String,
    pub actions: Vec<String>,
}

/// The parts of a WSDL the converter checks its mappings against.
#[derive(Debug)]
pub struct Wsdl {
    pub target_namespace: String,
    pub operations: Vec<WsdlOperation>,
    /// Global elements of the XSD, with their trees.
    pub elements: HashMap<String, Particle>,
    /// Whether a binding uses SOAP 1.1 and one SOAP 1.2.
    pub soap11: bool,
    pub soap12: bool,
    /// The `location` of every soap:address and soap12:address, as written.
    pub addresses: Vec<String>,
}

struct Types<'a> {
    complex: HashMap<&'a str, &'a Node>,
    simple: HashMap<&'a str, &'a Node>,
}

impl<'a> Types<'a> {
    fn builtin_of_simple(&self, name: &str, depth: usize) -> Option<String> {
        if depth > 16 {
            return None;
        }
        match self.simple.get(name) {
            Some(st) => {
                let base = st.kids(XSD, "restriction").next()?.attr("base")?;
                self.builtin_of_simple(local(base), depth + 1)
                    .or_else(|| Some(local(base).to_owned()))
            }
            None => Some(name.to_owned()),
        }
    }

    fn sequence(&self, ct: &'a Node, depth: usize) -> Result<Vec<Particle>, String> {
        let mut out = Vec::new();
        for seq in ct.kids(XSD, "sequence") {
            for el in seq.kids(XSD, "element") {
                out.push(self.particle(el, depth + 1)?);
            }
        }
        Ok(out)
    }

    fn particle(&self, el: &'a Node, depth: usize) -> Result<Particle, String> {
        if depth > 32 {
            return Err("the XSD nests deeper than 32 levels".into());
        }
        let name = el
            .attr("name")
            .ok_or("an xs:element without a name")?
            .to_owned();
        let min = el
            .attr("minOccurs")
            .map_or(Ok(1), str::parse)
            .map_err(|_| format!("{name}: bad minOccurs"))?;
        let max = match el.attr("maxOccurs") {
            Some("unbounded") => None,
            Some(m) => Some(m.parse().map_err(|_| format!("{name}: bad maxOccurs"))?),
            None => Some(1),
        };
        let (builtin, children) = if let Some(ty) = el.attr("type") {
            let ty = local(ty);
            match self.complex.get(ty) {
                Some(ct) => (None, self.sequence(ct, depth)?),
                None => (self.builtin_of_simple(ty, 0), Vec::new()),
            }
        } else if let Some(ct) = el.kids(XSD, "complexType").next() {
            (None, self.sequence(ct, depth)?)
        } else if let Some(st) = el.kids(XSD, "simpleType").next() {
            let base = st
                .kids(XSD, "restriction")
                .next()
                .and_then(|r| r.attr("base"))
                .map(local)
                .unwrap_or("string");
            (self.builtin_of_simple(base, 0), Vec::new())
        } else {
            (Some("anyType".to_owned()), Vec::new())
        };
        Ok(Particle {
            name,
            builtin,
            children,
            min,
            max,
        })
    }
}

impl Wsdl {
    pub fn parse(text: &str) -> Result<Wsdl, String> {
        let root = parse_tree(text)?;
        if root.ns != WSDL || root.local != "definitions" {
            return Err("the root is not wsdl:definitions".into());
        }
        let target_namespace = root
            .attr("targetNamespace")
            .ok_or("no targetNamespace")?
            .to_owned();
        let mut schemas = Vec::new();
        for types in root.kids(WSDL, "types") {
            schemas.extend(types.kids(XSD, "schema"));
        }
        let mut t = Types {
            complex: HashMap::new(),
            simple: HashMap::new(),
        };
        for s in &schemas {
            for ct in s.kids(XSD, "complexType") {
                if let Some(n) = ct.attr("name") {
                    t.complex.insert(n, ct);
                }
            }
            for st in s.kids(XSD, "simpleType") {
                if let Some(n) = st.attr("name") {
                    t.simple.insert(n, st);
                }
            }
        }
        let mut elements = HashMap::new();
        for s in &schemas {
            for el in s.kids(XSD, "element") {
                let p = t.particle(el, 0)?;
                elements.insert(p.name.clone(), p);
            }
        }
        let mut operations: Vec<WsdlOperation> = Vec::new();
        for pt in root.kids(WSDL, "portType") {
            for op in pt.kids(WSDL, "operation") {
                let name = op
                    .attr("name")
                    .ok_or("a portType operation without a name")?;
                operations.push(WsdlOperation {
                    name: name.to_owned(),
                    actions: Vec::new(),
                });
            }
        }
        let (mut soap11, mut soap12) = (false, false);
        for b in root.kids(WSDL, "binding") {
            soap11 |= b.kids(SOAP11_BIND, "binding").next().is_some();
            soap12 |= b.kids(SOAP12_BIND, "binding").next().is_some();
            for op in b.kids(WSDL, "operation") {
                let mut found = Vec::new();
                op.descendants(SOAP11_BIND, "operation", &mut found);
                op.descendants(SOAP12_BIND, "operation", &mut found);
                let name = op.attr("name").unwrap_or_default();
                if let Some(o) = operations.iter_mut().find(|o| o.name == name) {
                    o.actions.extend(
                        found
                            .iter()
                            .filter_map(|n| n.attr("soapAction"))
                            .map(str::to_owned),
                    );
                }
            }
        }
        let mut addresses = Vec::new();
        for svc in root.kids(WSDL, "service") {
            for port in svc.kids(WSDL, "port") {
                for a in port
                    .kids(SOAP11_BIND, "address")
                    .chain(port.kids(SOAP12_BIND, "address"))
                {
                    addresses.extend(a.attr("location").map(str::to_owned));
                }
            }
        }
        Ok(Wsdl {
            target_namespace,
            operations,
            elements,
            soap11,
            soap12,
            addresses,
        })
    }

    /// The particle at `path` (slash-separated local names) below global element `root`,
    /// and its position: the index in each enclosing sequence, for ordering.
    pub fn resolve(&self, root: &str, path: &str) -> Option<(&Particle, Vec<usize>)> {
        let mut p = self.elements.get(root)?;
        let mut position = Vec::new();
        for seg in path.split('/') {
            let (i, child) = p.children.iter().enumerate().find(|(_, c)| c.name == seg)?;
            position.push(i);
            p = child;
        }
        Some((p, position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<?xml version="1.0"?>
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:xs="http://www.w3.org/2001/XMLSchema"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" targetNamespace="urn:t">
  <wsdl:types>
    <xs:schema targetNamespace="urn:t">
      <xs:simpleType name="Cpr"><xs:restriction base="xs:string"><xs:pattern value="[0-9]{10}"/></xs:restriction></xs:simpleType>
      <xs:complexType name="G"><xs:sequence>
        <xs:element name="A" type="xs:int"/><xs:element name="B" type="xs:dateTime" minOccurs="0"/>
      </xs:sequence></xs:complexType>
      <xs:element name="OpRequest"><xs:complexType><xs:sequence>
        <xs:element name="Cpr" type="tns:Cpr"/><xs:element name="G" type="tns:G"/>
      </xs:sequence></xs:complexType></xs:element>
    </xs:schema>
  </wsdl:types>
  <wsdl:portType name="P"><wsdl:operation name="Op"/></wsdl:portType>
  <wsdl:binding name="B" type="tns:P"><soap:binding transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="Op"><soap:operation soapAction="urn:t/Op"/></wsdl:operation>
  </wsdl:binding>
</wsdl:definitions>"#;

    #[test]
    fn reads_operations_actions_and_the_element_tree() {
        let w = Wsdl::parse(SAMPLE).unwrap();
        assert_eq!(w.target_namespace, "urn:t");
        assert_eq!(w.operations[0].name, "Op");
        assert_eq!(w.operations[0].actions, ["urn:t/Op"]);
        assert!(w.soap11 && !w.soap12);
        let (cpr, pos) = w.resolve("OpRequest", "Cpr").unwrap();
        assert_eq!((cpr.builtin.as_deref(), pos), (Some("string"), vec![0]));
        let (b, pos) = w.resolve("OpRequest", "G/B").unwrap();
        assert_eq!(
            (b.builtin.as_deref(), b.min, pos),
            (Some("dateTime"), 0, vec![1, 1])
        );
        assert!(w.resolve("OpRequest", "G/C").is_none());
    }
}
