//! The WSDL as served at `GET <endpoint>?wsdl`: the file from `wsdl/`, with every
//! soap:address/soap12:address `location` pointing at the address the client used (Host,
//! or X-Forwarded-Host and X-Forwarded-Proto behind a proxy). The file is split once, at
//! start, around those locations; a request only joins the parts, and the result is cached
//! per client-visible address (bounded).

use std::sync::Arc;

use quick_xml::escape::escape;

/// The WSDL text split around its address locations.
#[derive(Debug)]
pub struct WsdlTemplate {
    /// Text before each location, and after the last.
    parts: Vec<&'static str>,
    /// The path of each location (e.g. `/PersonRegistrationService/9`).
    paths: Vec<String>,
    cache: moka::sync::Cache<String, Arc<str>>,
}

fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/", |i| &rest[i..])
}

impl WsdlTemplate {
    /// `addresses` are the location values as written in `text`.
    pub fn new(text: &'static str, addresses: &[String]) -> WsdlTemplate {
        let mut parts = Vec::new();
        let mut paths = Vec::new();
        let mut rest = text;
        for a in addresses {
            let needle = format!("location=\"{a}\"");
            if let Some(i) = rest.find(&needle) {
                let start = i + "location=\"".len();
                parts.push(&rest[..start]);
                paths.push(url_path(a).to_owned());
                rest = &rest[start + a.len()..];
            }
        }
        parts.push(rest);
        WsdlTemplate {
            parts,
            paths,
            cache: moka::sync::Cache::new(64),
        }
    }

    /// The WSDL with every address on `base` (`scheme://host[:port]`).
    pub fn render(&self, base: &str) -> Arc<str> {
        if let Some(hit) = self.cache.get(base) {
            return hit;
        }
        let mut out =
            String::with_capacity(self.parts.iter().map(|p| p.len()).sum::<usize>() + 128);
        for (i, part) in self.parts.iter().enumerate() {
            out.push_str(part);
            if let Some(path) = self.paths.get(i) {
                out.push_str(&escape(format!("{base}{path}")));
            }
        }
        let rendered: Arc<str> = out.into();
        self.cache.insert(base.to_owned(), rendered.clone());
        rendered
    }
}

/// The address the client used: X-Forwarded-Proto / X-Forwarded-Host when a proxy set
/// them (the last of a list: the value the nearest proxy, the trusted one, added), else the
/// request's own scheme and Host. A host with characters no host has is ignored (the WSDL
/// must not carry what a caller injects).
pub fn client_base(
    scheme: &str,
    host: &str,
    forwarded_proto: Option<&str>,
    forwarded_host: Option<&str>,
) -> String {
    fn last(v: Option<&str>) -> Option<&str> {
        v.and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }
    let valid_host = |h: &&str| {
        h.len() <= 255
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
    };
    let proto = last(forwarded_proto)
        .filter(|p| *p == "http" || *p == "https")
        .unwrap_or(scheme);
    let host = last(forwarded_host)
        .filter(valid_host)
        .or(Some(host).filter(valid_host))
        .unwrap_or("localhost");
    format!("{proto}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_rewritten_and_nothing_else() {
        let text = r#"<a><soap:address location="http://localhost:8080/S/9"/><x location="keep"/><soap12:address location="http://localhost:8080/S/9"/></a>"#;
        let t = WsdlTemplate::new(
            text,
            &[
                "http://localhost:8080/S/9".into(),
                "http://localhost:8080/S/9".into(),
            ],
        );
        let out = t.render("https://kss.example:8443");
        assert_eq!(
            &*out,
            r#"<a><soap:address location="https://kss.example:8443/S/9"/><x location="keep"/><soap12:address location="https://kss.example:8443/S/9"/></a>"#
        );
    }

    #[test]
    fn the_client_visible_base() {
        assert_eq!(
            client_base("http", "127.0.0.1:8080", None, None),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            client_base(
                "http",
                "internal:8080",
                Some("https"),
                Some("evil.example, gw.example")
            ),
            "https://gw.example"
        );
        assert_eq!(
            client_base("http", "h:1", Some("gopher"), Some("\"><x")),
            "http://h:1"
        );
    }
}
