//! `--glob PATTERN`: shell-style patterns on paths relative to an input folder, `/` as the
//! separator. `*` and `?` stay within one path segment, `**` spans segments, `[abc]`,
//! `[a-z]` and `[!a]` match one character, `{png,jpg}` gives alternatives. A pattern
//! without `/` is matched against the file name alone (`*.png` finds PNGs at any depth).
//! (No glob crate is in the offline registry; this is the small subset the command needs.)

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct Glob {
    /// The pattern with its braces expanded.
    alternatives: Vec<Vec<char>>,
    /// Whether the pattern names whole paths (it has a `/`) or file names.
    whole_path: bool,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob> {
        let usage = |m: &str| Error::Usage(format!("--glob {pattern}: {m}"));
        if pattern.is_empty() {
            return Err(usage("empty pattern"));
        }
        let alternatives = expand_braces(pattern).map_err(usage)?;
        for alt in &alternatives {
            check_classes(alt).map_err(usage)?;
        }
        Ok(Glob {
            alternatives: alternatives
                .into_iter()
                .map(|a| a.trim_start_matches("./").chars().collect())
                .collect(),
            whole_path: pattern.contains('/'),
        })
    }

    /// Whether `rel` (a `/`-separated relative path) matches.
    pub fn matches(&self, rel: &str) -> bool {
        let subject = if self.whole_path {
            rel
        } else {
            rel.rsplit('/').next().unwrap_or(rel)
        };
        let s: Vec<char> = subject.chars().collect();
        self.alternatives.iter().any(|p| match_here(p, &s))
    }
}

/// `a{b,c}d{e,f}` → `abde`, `abdf`, `acde`, `acdf` (nested braces too).
fn expand_braces(p: &str) -> std::result::Result<Vec<String>, &'static str> {
    let Some(open) = p.find('{') else {
        if p.contains('}') {
            return Err("'}' without '{'");
        }
        return Ok(vec![p.to_string()]);
    };
    let mut depth = 0usize;
    let mut close = None;
    let mut commas = Vec::new();
    for (i, c) in p[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            ',' if depth == 1 => commas.push(open + i),
            _ => {}
        }
    }
    let close = close.ok_or("'{' without '}'")?;
    let (head, tail) = (&p[..open], &p[close + 1..]);
    let mut bounds = vec![open];
    bounds.extend(commas);
    bounds.push(close);
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let choice = &p[w[0] + 1..w[1]];
        out.extend(expand_braces(&format!("{head}{choice}{tail}"))?);
    }
    Ok(out)
}

fn check_classes(p: &str) -> std::result::Result<(), &'static str> {
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == '[' {
            let mut first = true;
            loop {
                match chars.next() {
                    None => return Err("'[' without ']'"),
                    Some(']') if !first => break,
                    Some(_) => first = false,
                }
            }
        }
    }
    Ok(())
}

/// Matches `p` against all of `s`.
fn match_here(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('*') if p.get(1) == Some(&'*') => {
            // `**/` also matches no folder at all.
            let rest = &p[2..];
            if let Some(after) = rest.strip_prefix(&['/']) {
                if match_here(after, s) {
                    return true;
                }
            }
            (0..=s.len()).any(|i| match_here(rest, &s[i..]))
        }
        Some('*') => {
            let rest = &p[1..];
            for i in 0..=s.len() {
                if match_here(rest, &s[i..]) {
                    return true;
                }
                if s.get(i) == Some(&'/') {
                    break;
                }
            }
            false
        }
        Some('?') => s.first().is_some_and(|&c| c != '/') && match_here(&p[1..], &s[1..]),
        Some('[') => {
            let Some(&c) = s.first() else { return false };
            let (matched, used) = class(&p[1..], c);
            c != '/' && matched && match_here(&p[1 + used..], &s[1..])
        }
        Some(&c) => s.first() == Some(&c) && match_here(&p[1..], &s[1..]),
    }
}

/// Whether `c` is in the class that starts `p` (just after `[`), and how many pattern
/// characters the class takes with its `]`.
fn class(p: &[char], c: char) -> (bool, usize) {
    let negate = matches!(p.first(), Some('!') | Some('^'));
    let mut i = usize::from(negate);
    let mut hit = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return (hit != negate, i + 1);
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            hit |= p[i] <= c && c <= p[i + 2];
            i += 3;
        } else {
            hit |= p[i] == c;
            i += 1;
        }
    }
    (false, p.len())
}

#[cfg(test)]
mod tests {
    use super::Glob;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).unwrap().matches(s)
    }

    #[test]
    fn patterns() {
        assert!(m("*.png", "a/b/c.png"));
        assert!(!m("*.png", "a/b/c.jpg"));
        assert!(m("*.{png,jpg}", "x/c.jpg"));
        assert!(m("a/*.png", "a/c.png"));
        assert!(!m("a/*.png", "a/b/c.png"));
        assert!(m("a/**/*.png", "a/b/c/d.png"));
        assert!(m("a/**/*.png", "a/d.png"));
        assert!(m("**/x?.tif", "deep/er/x1.tif"));
        assert!(m("img[0-9].png", "img7.png"));
        assert!(!m("img[!0-9].png", "img7.png"));
        assert!(m("img[!0-9].png", "imgA.png"));
        assert!(Glob::new("a[b").is_err());
        assert!(Glob::new("a{b").is_err());
        assert!(Glob::new("").is_err());
    }
}
