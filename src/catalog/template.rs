//! Crisp path templates such as `/website/{websiteID}/conversation/{sessionID}`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters is escaped, so a value is always exactly one
/// path segment or one query component (as `encodeURIComponent` does in Crisp's Node client).
pub const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    Literal(&'static str),
    Param(&'static str),
}

#[derive(Debug)]
pub struct PathTemplate {
    raw: &'static str,
    segments: Vec<Segment>,
}

impl PathTemplate {
    pub fn parse(raw: &'static str) -> Result<Self, String> {
        let rest = raw
            .strip_prefix('/')
            .ok_or_else(|| format!("`{raw}` must start with `/`"))?;
        let mut segments = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for part in rest.split('/') {
            if part.is_empty() {
                return Err(format!("`{raw}` has an empty segment"));
            }
            if let Some(inner) = part.strip_prefix('{') {
                let name = inner
                    .strip_suffix('}')
                    .ok_or_else(|| format!("`{raw}`: unclosed `{{` in `{part}`"))?;
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(format!("`{raw}`: bad parameter name `{name}`"));
                }
                if seen.contains(&name) {
                    return Err(format!("`{raw}`: parameter `{name}` appears twice"));
                }
                seen.push(name);
                segments.push(Segment::Param(name));
            } else if part.contains(['{', '}']) {
                return Err(format!("`{raw}`: stray brace in `{part}`"));
            } else {
                segments.push(Segment::Literal(part));
            }
        }
        Ok(Self { raw, segments })
    }

    pub fn as_str(&self) -> &'static str {
        self.raw
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn params(&self) -> Vec<&'static str> {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Param(name) => Some(*name),
                Segment::Literal(_) => None,
            })
            .collect()
    }

    /// Fills the template, percent-encoding each value as one segment. `value` must answer for
    /// every parameter; validation of the values happens before this is called.
    pub fn render<'v>(&self, mut value: impl FnMut(&str) -> &'v str) -> String {
        let mut out = String::with_capacity(self.raw.len() + 32);
        for segment in &self.segments {
            out.push('/');
            match segment {
                Segment::Literal(text) => out.push_str(text),
                // The encoder's pieces pushed as they come: `write!` would run the formatting
                // machinery for each value of every call.
                Segment::Param(name) => {
                    utf8_percent_encode(value(name), COMPONENT)
                        .for_each(|piece| out.push_str(piece));
                }
            }
        }
        out
    }

    /// Matches a concrete, still-encoded path; returns the decoded parameter values.
    pub fn matches(&self, path: &str) -> Option<Vec<(&'static str, String)>> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut values = Vec::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(text) if *text == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(_) if part.is_empty() => return None,
                Segment::Param(name) => values.push((
                    *name,
                    percent_encoding::percent_decode_str(part)
                        .decode_utf8_lossy()
                        .into_owned(),
                )),
            }
        }
        Some(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_each_value_as_one_segment() {
        let t =
            PathTemplate::parse("/website/{websiteID}/people/profile/{peopleID}").expect("valid");
        let path = t.render(|name| match name {
            "websiteID" => "w 1",
            _ => "a/b@c.d?x",
        });
        assert_eq!(path, "/website/w%201/people/profile/a%2Fb%40c.d%3Fx");
        let back = t.matches(&path).expect("matches");
        assert_eq!(back[1], ("peopleID", "a/b@c.d?x".to_owned()));
    }

    #[test]
    fn refuses_bad_templates() {
        for bad in ["website", "/a//b", "/a/{b", "/a/{}", "/a/x{b}", "/{a}/{a}"] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
