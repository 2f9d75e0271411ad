//! The image attribute string: an ISMRMRD MetaContainer,
//! `<ismrmrdMeta><meta><name>N</name><value>V</value>...</meta>...</ismrmrdMeta>`.
//!
//! The format is a fixed, tiny XML vocabulary, so it is read by a small purpose-built parser
//! (declarations, comments, whitespace and the predefined / numeric entities handled) rather
//! than a general XML library; order and repeated values are kept so an image's attributes
//! go back as they came, plus our additions.

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meta {
    entries: Vec<(String, Vec<String>)>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("image attributes at byte {at}: {reason}")]
pub struct MetaError {
    pub at: usize,
    pub reason: String,
}

impl Meta {
    pub fn new() -> Self {
        Meta::default()
    }

    /// Parses an attribute string; an empty string is an empty container.
    pub fn parse(xml: &str) -> Result<Self, MetaError> {
        let mut p = Parser { s: xml, at: 0 };
        let mut meta = Meta::new();
        p.skip_misc();
        if p.at == xml.len() {
            return Ok(meta);
        }
        p.open("ismrmrdMeta")?;
        loop {
            p.skip_misc();
            if p.try_close("ismrmrdMeta") {
                break;
            }
            p.open("meta")?;
            p.skip_misc();
            p.open("name")?;
            let name = p.text()?;
            p.close("name")?;
            let mut values = Vec::new();
            loop {
                p.skip_misc();
                if p.try_close("meta") {
                    break;
                }
                if p.try_empty("value") {
                    values.push(String::new());
                    continue;
                }
                p.open("value")?;
                values.push(p.text()?);
                p.close("value")?;
            }
            meta.entries.push((name, values));
        }
        p.skip_misc();
        if p.at != xml.len() {
            return Err(p.error("text after </ismrmrdMeta>"));
        }
        Ok(meta)
    }

    pub fn get(&self, name: &str) -> Option<&[String]> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    pub fn first(&self, name: &str) -> Option<&str> {
        self.get(name)?.first().map(String::as_str)
    }

    pub fn set(&mut self, name: &str, values: Vec<String>) {
        match self.entries.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = values,
            None => self.entries.push((name.to_owned(), values)),
        }
    }

    /// Adds a value to `name`'s list (creating it), unless it is there already.
    pub fn append(&mut self, name: &str, value: &str) {
        match self.entries.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => {
                if !v.iter().any(|x| x == value) {
                    v.push(value.to_owned());
                }
            }
            None => self.entries.push((name.to_owned(), vec![value.to_owned()])),
        }
    }

    pub fn to_xml(&self) -> String {
        let mut out = String::from("<ismrmrdMeta>");
        for (name, values) in &self.entries {
            out.push_str("<meta><name>");
            escape_into(name, &mut out);
            out.push_str("</name>");
            for v in values {
                out.push_str("<value>");
                escape_into(v, &mut out);
                out.push_str("</value>");
            }
            out.push_str("</meta>");
        }
        out.push_str("</ismrmrdMeta>");
        out
    }
}

fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

struct Parser<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.at..]
    }

    fn error(&self, reason: impl Into<String>) -> MetaError {
        MetaError {
            at: self.at,
            reason: reason.into(),
        }
    }

    /// Skips whitespace, `<?...?>` declarations and comments.
    fn skip_misc(&mut self) {
        loop {
            let trimmed = self.rest().trim_start();
            self.at = self.s.len() - trimmed.len();
            let end = if trimmed.starts_with("<?") {
                trimmed.find("?>").map(|e| e + 2)
            } else if trimmed.starts_with("<!--") {
                trimmed.find("-->").map(|e| e + 3)
            } else {
                None
            };
            match end {
                Some(e) => self.at += e,
                None => return,
            }
        }
    }

    fn expect(&mut self, token: &str, what: &str) -> Result<(), MetaError> {
        if self.rest().starts_with(token) {
            self.at += token.len();
            Ok(())
        } else {
            let found: String = self.rest().chars().take(20).collect();
            Err(self.error(format!("expected {what}, found {found:?}")))
        }
    }

    fn open(&mut self, tag: &str) -> Result<(), MetaError> {
        self.expect(&format!("<{tag}>"), &format!("<{tag}>"))
    }

    fn close(&mut self, tag: &str) -> Result<(), MetaError> {
        self.expect(&format!("</{tag}>"), &format!("</{tag}>"))
    }

    fn try_close(&mut self, tag: &str) -> bool {
        self.expect(&format!("</{tag}>"), "").is_ok()
    }

    fn try_empty(&mut self, tag: &str) -> bool {
        self.expect(&format!("<{tag}/>"), "").is_ok()
    }

    /// Character data up to the next `<`, entities resolved.
    fn text(&mut self) -> Result<String, MetaError> {
        let end = self
            .rest()
            .find('<')
            .ok_or_else(|| self.error("unterminated text"))?;
        let raw = &self.rest()[..end];
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(amp) = rest.find('&') {
            out.push_str(&rest[..amp]);
            let semi = rest[amp..]
                .find(';')
                .ok_or_else(|| self.error("unterminated entity"))?;
            let name = &rest[amp + 1..amp + semi];
            let c = match name {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                _ => {
                    let code = if let Some(hex) = name.strip_prefix("#x") {
                        u32::from_str_radix(hex, 16).ok()
                    } else if let Some(dec) = name.strip_prefix('#') {
                        dec.parse().ok()
                    } else {
                        None
                    };
                    code.and_then(char::from_u32)
                        .ok_or_else(|| self.error(format!("unknown entity &{name};")))?
                }
            };
            out.push(c);
            rest = &rest[amp + semi + 1..];
        }
        out.push_str(rest);
        self.at += end;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_fire_example_and_round_trips() {
        let xml = r#"<?xml version="1.0"?>
            <ismrmrdMeta>
                <meta><name>DataRole</name><value>Image</value><value>AVE</value></meta>
                <!-- a comment -->
                <meta><name>ImageNumber</name><value>1</value></meta>
                <meta><name>Odd</name><value>a &amp; b &lt;c&gt; &#65;</value><value/></meta>
            </ismrmrdMeta>"#;
        let meta = Meta::parse(xml).unwrap();
        assert_eq!(meta.get("DataRole").unwrap(), ["Image", "AVE"]);
        assert_eq!(meta.first("ImageNumber"), Some("1"));
        assert_eq!(meta.get("Odd").unwrap(), ["a & b <c> A", ""]);
        assert_eq!(Meta::parse(&meta.to_xml()).unwrap(), meta);
    }

    #[test]
    fn empty_string_is_an_empty_container() {
        assert_eq!(Meta::parse("").unwrap(), Meta::new());
        assert_eq!(Meta::parse("  ").unwrap(), Meta::new());
    }

    #[test]
    fn errors_say_where_and_what() {
        let err = Meta::parse("<ismrmrdMeta><meta><nam>x</nam>").unwrap_err();
        assert_eq!(err.at, 19);
        assert!(err.reason.contains("expected <name>"), "{err}");
        assert!(Meta::parse("<ismrmrdMeta></ismrmrdMeta>junk").is_err());
    }

    #[test]
    fn append_keeps_values_unique() {
        let mut m = Meta::new();
        m.append("ImageType", "DENOISED");
        m.append("ImageType", "DENOISED");
        assert_eq!(m.get("ImageType").unwrap(), ["DENOISED"]);
    }
}
