//! Reads Prometheus text into samples that tests can query by name and labels.

/// One sample line: `(name, labels, value)`.
pub type Sample = (String, Vec<(String, String)>, f64);

/// One scrape of `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// `(name, labels, value)` for every sample line.
    pub samples: Vec<Sample>,
    /// The raw text.
    pub text: String,
}

impl Scrape {
    /// Parses Prometheus text exposition.
    pub fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = match line.rsplit_once(' ') {
                Some(x) => x,
                None => continue,
            };
            let value: f64 = match value.parse() {
                Ok(v) => v,
                Err(_) => continue,
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n.to_string(), parse_labels(rest.trim_end_matches('}'))),
                None => (series.to_string(), Vec::new()),
            };
            samples.push((name, labels, value));
        }
        Self {
            samples,
            text: text.to_string(),
        }
    }

    /// Sum of the samples named `name` whose labels include every pair of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|(_, v)| v).sum()
    }

    /// Whether a sample named `name` with those labels exists.
    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.matching(name, labels).next().is_some()
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = (&'a Vec<(String, String)>, f64)> + 'a {
        self.samples
            .iter()
            .filter(move |(n, ls, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, ls, v)| (ls, *v))
    }
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(if n == 'n' { '\n' } else { n });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.push((key.trim_start_matches(',').trim().to_string(), value));
        rest = &after[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_and_values() {
        let s = Scrape::parse(
            "# HELP x y\nportico_requests_total{route=\"a\",pool=\"p\",origin=\"\",code=\"200\"} 3\nportico_node_info{region=\"eu\",version=\"0.1.0\"} 1\nup 1\n",
        );
        assert_eq!(s.sum("portico_requests_total", &[("code", "200")]), 3.0);
        assert_eq!(s.sum("portico_requests_total", &[("origin", "")]), 3.0);
        assert!(s.has("portico_node_info", &[("region", "eu")]));
        assert_eq!(s.sum("up", &[]), 1.0);
        assert_eq!(s.sum("missing", &[]), 0.0);
    }
}
