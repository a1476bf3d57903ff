//! The wildcard patterns of RAM policies: `*` is any run of characters (including `/` and
//! none), `?` is exactly one character, everything else matches itself. Matching is linear in
//! the text for each star-free stretch and at worst O(pattern × text) overall — it never
//! backtracks exponentially, whatever the pattern (policies are user input).

/// A compiled wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    toks: Vec<Tok>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Star,
    One,
    Lit(char),
}

impl Glob {
    pub fn new(pattern: &str) -> Glob {
        let mut toks = Vec::with_capacity(pattern.len());
        for c in pattern.chars() {
            let tok = match c {
                '*' => Tok::Star,
                '?' => Tok::One,
                c => Tok::Lit(c),
            };
            // `**` means the same as `*`; collapsing keeps the matcher's work small.
            if tok == Tok::Star && toks.last() == Some(&Tok::Star) {
                continue;
            }
            toks.push(tok);
        }
        Glob { toks }
    }

    /// Case-sensitive match (resources, `StringLike`).
    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        self.matches_chars(&text, false)
    }

    /// Case-insensitive match (actions): both sides compared through [`fold`].
    pub fn matches_ignore_case(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().map(fold).collect();
        self.matches_chars(&text, true)
    }

    /// Matches against text already split into characters (and already folded when
    /// `fold_pattern`), so an evaluation converts the request's strings once.
    pub(crate) fn matches_chars(&self, text: &[char], fold_pattern: bool) -> bool {
        let p = &self.toks;
        let lit_eq = |c: char, t: char| if fold_pattern { fold(c) == t } else { c == t };
        let (mut pi, mut ti) = (0usize, 0usize);
        // Where to resume after the most recent star: (pattern index after it, text index it
        // has swallowed up to). Only the latest star matters: whatever an earlier star could
        // absorb, the later one can too, which is what makes this quadratic at worst.
        let mut resume: Option<(usize, usize)> = None;
        while ti < text.len() {
            match p.get(pi) {
                Some(Tok::Star) => {
                    resume = Some((pi + 1, ti));
                    pi += 1;
                    continue;
                }
                Some(Tok::One) => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                Some(Tok::Lit(c)) if lit_eq(*c, text[ti]) => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
            match resume {
                Some((after_star, swallowed)) => {
                    pi = after_star;
                    ti = swallowed + 1;
                    resume = Some((after_star, swallowed + 1));
                }
                None => return false,
            }
        }
        p[pi..].iter().all(|t| *t == Tok::Star)
    }
}

/// Simple case folding, one character to one character (so `?` still means one character):
/// the lowercase form when it is a single character, else the character itself.
pub(crate) fn fold(c: char) -> char {
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything/at/all", true),
            ("", "", true),
            ("", "a", false),
            ("a", "", false),
            ("?", "", false),
            ("?", "x", true),
            ("?", "xy", false),
            ("services/*", "services/a/functions/b", true),
            ("services/*", "services/", true),
            ("services/*", "services", false),
            (
                "services/s.prod/functions/*",
                "services/s.prod/functions/f",
                true,
            ),
            (
                "services/s.prod/functions/*",
                "services/s.LATEST/functions/f",
                false,
            ),
            (
                "services/s/functions/*",
                "services/s.prod/functions/f",
                false,
            ),
            (
                "acs:fc:*:*:services/*",
                "acs:fc:cn-hangzhou:123:services/x",
                true,
            ),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*a", "bbba", true),
            ("*a", "bbbab", false),
            ("a**b", "ab", true),
            ("é?", "éü", true),
            ("Fc:Get*", "fc:GetFunction", false),
        ];
        for (pat, text, want) in cases {
            assert_eq!(Glob::new(pat).matches(text), *want, "{pat:?} vs {text:?}");
        }
    }

    #[test]
    fn ignore_case() {
        assert!(Glob::new("Fc:get*").matches_ignore_case("fc:GetFunction"));
        assert!(Glob::new("FC:*").matches_ignore_case("fc:InvokeFunction"));
        assert!(!Glob::new("fc:List*").matches_ignore_case("fc:GetFunction"));
        // Folding keeps one character per character, so `?` still sees one.
        assert!(Glob::new("?").matches_ignore_case("İ"));
    }

    #[test]
    fn adversarial_patterns_stay_fast() {
        // Exponential backtracking would never finish these; a generous bound only detects
        // a hang, it does not measure speed.
        let text = "a".repeat(5_000);
        let pattern = format!("{}b", "*a".repeat(2_000));
        let started = std::time::Instant::now();
        assert!(!Glob::new(&pattern).matches(&text));
        assert!(Glob::new(&"*a".repeat(2_000)).matches(&text));
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }

    /// The obvious recursive definition: exponential, so only for small inputs.
    fn reference(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| reference(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && reference(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && reference(rest, &t[1..]),
        }
    }

    proptest! {
        #[test]
        fn agrees_with_reference(p in "[ab*?/]{0,8}", t in "[ab/]{0,10}") {
            let pc: Vec<char> = p.chars().collect();
            let tc: Vec<char> = t.chars().collect();
            prop_assert_eq!(Glob::new(&p).matches(&t), reference(&pc, &tc));
        }

        #[test]
        fn literal_patterns_match_only_themselves(t in "\\PC{0,12}", u in "\\PC{0,12}") {
            let lit: String = t.chars().filter(|c| *c != '*' && *c != '?').collect();
            prop_assert!(Glob::new(&lit).matches(&lit));
            prop_assert_eq!(Glob::new(&lit).matches(&u), lit == u);
        }

        #[test]
        fn ignore_case_agrees_with_folded_reference(p in "[aAbB*?]{0,8}", t in "[aAbB]{0,10}") {
            let pc: Vec<char> = p.chars().map(fold).collect();
            let tc: Vec<char> = t.chars().map(fold).collect();
            prop_assert_eq!(Glob::new(&p).matches_ignore_case(&t), reference(&pc, &tc));
        }
    }
}
