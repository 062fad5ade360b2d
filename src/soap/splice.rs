//! The legacy splice: the legacy service's SOAP response with the content of some
//! collections replaced, and every other byte kept as it was (other collections, prefixes,
//! namespace declarations, comments, whitespace). One streaming pass with quick-xml over the
//! legacy bytes: bytes are copied by position; only the inside of a replaced collection is
//! skipped (and, for the shadow compare, read into a small list of item fields).

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::resolve_reference;
use super::write::{Fields, write_items};

/// What to put into one collection of the legacy response.
pub struct Replacement<'a> {
    /// The collection element's local name (in the service's namespace).
    pub local: &'a str,
    pub item: &'a str,
    pub items: &'a [Fields<'a>],
}

/// One legacy item, as its child elements' (local name path, text), for the shadow compare.
pub type LegacyItem = Vec<(String, String)>;

/// The spliced response, and per replacement the items the legacy response had there.
pub struct Spliced {
    pub body: Vec<u8>,
    pub legacy_items: Vec<Vec<LegacyItem>>,
}

/// Replaces the content of every collection named in `replacements` (elements of
/// `namespace`, at any depth) and keeps all other bytes.
pub fn splice(
    legacy: &str,
    namespace: &str,
    replacements: &[Replacement<'_>],
) -> Result<Spliced, String> {
    let mut reader = NsReader::from_str(legacy);
    let mut out = String::with_capacity(legacy.len() + 512);
    let mut copied = 0usize;
    let mut legacy_items: Vec<Vec<LegacyItem>> = vec![Vec::new(); replacements.len()];
    // While inside a replaced collection: (which, depth below it, current item, path, text).
    let mut inside: Option<(usize, usize)> = None;
    let mut item: LegacyItem = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    // Every open element, to know the document is complete at its end.
    let mut open = 0usize;
    loop {
        let before = reader.buffer_position() as usize;
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| format!("the legacy response is not XML: {e}"))?;
        let ours = matches!(ns, ResolveResult::Bound(n) if n.0 == namespace);
        let after = reader.buffer_position() as usize;
        match &event {
            Event::Start(_) => open += 1,
            Event::End(_) => open = open.saturating_sub(1),
            _ => {}
        }
        match (&mut inside, event) {
            (None, Event::Start(e)) if ours => {
                let local = e.local_name();
                if let Some(i) = replacements.iter().position(|r| r.local == local.as_ref()) {
                    out.push_str(&legacy[copied..after]);
                    copied = after;
                    inside = Some((i, 0));
                }
            }
            (None, Event::Empty(e)) if ours => {
                let local = e.local_name();
                if let Some(i) = replacements.iter().position(|r| r.local == local.as_ref()) {
                    let r = &replacements[i];
                    out.push_str(&legacy[copied..before]);
                    let tag = &legacy[before..after];
                    // `<p:X a="b"/>` → `<p:X a="b">` items `</p:X>`.
                    let open = tag.trim_end_matches('>').trim_end_matches('/').trim_end();
                    out.push_str(open);
                    out.push('>');
                    let qname = e.name();
                    let prefix = qname.prefix().map(|p| p.as_ref().to_owned());
                    write_items(&mut out, prefix.as_deref(), r.item, r.items);
                    out.push_str("</");
                    out.push_str(qname.as_ref());
                    out.push('>');
                    copied = after;
                }
            }
            (Some((i, depth)), Event::Start(e)) => {
                *depth += 1;
                if *depth > 1 {
                    path.push(e.local_name().as_ref().to_owned());
                } else {
                    item.clear();
                }
                text.clear();
                let _ = i;
            }
            (Some((i, depth)), Event::End(e)) => {
                if *depth == 0 {
                    // The collection's own end tag: write the new items before it.
                    let r = &replacements[*i];
                    let qname = e.name();
                    let prefix = qname.prefix().map(|p| p.as_ref().to_owned());
                    write_items(&mut out, prefix.as_deref(), r.item, r.items);
                    copied = before;
                    inside = None;
                } else {
                    if *depth == 1 {
                        legacy_items[*i].push(std::mem::take(&mut item));
                    } else {
                        item.push((path.join("/"), text.trim().to_owned()));
                        path.pop();
                    }
                    *depth -= 1;
                    text.clear();
                }
            }
            (Some(_), Event::Text(t)) => text.push_str(&t.xml10_content()),
            (Some(_), Event::CData(c)) => text.push_str(&c.into_inner()),
            // Resolved wherever it is: an unknown entity or a reference to no character makes
            // the answer not XML (nothing may declare an entity: a DOCTYPE is refused), and
            // passing it on would hand the caller a document its parser refuses.
            (state, Event::GeneralRef(r)) => {
                let c = resolve_reference(&r)
                    .map_err(|e| format!("the legacy response is not XML: {e}"))?;
                if state.is_some() {
                    text.push(c);
                }
            }
            (Some((i, depth)), Event::Empty(e)) => {
                if *depth == 0 {
                    legacy_items[*i].push(Vec::new());
                } else {
                    let mut p = path.join("/");
                    if !p.is_empty() {
                        p.push('/');
                    }
                    p.push_str(e.local_name().as_ref());
                    item.push((p, String::new()));
                }
            }
            (_, Event::DocType(_)) => return Err("the legacy response has a DOCTYPE".into()),
            (_, Event::Eof) => break,
            _ => {}
        }
    }
    if inside.is_some() || open > 0 {
        return Err("the legacy response ends before its elements are closed".into());
    }
    out.push_str(&legacy[copied..]);
    Ok(Spliced {
        body: out.into_bytes(),
        legacy_items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
