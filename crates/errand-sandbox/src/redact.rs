//! Secret values out of a byte stream: every occurrence becomes `[secret:NAME]`, including one
//! split across the chunks a command's output arrives in.
//!
//! The redactor holds back the tail of each chunk that could be the start of a secret (at most
//! the longest secret's length minus one byte) until the next chunk or [`Redactor::finish`]
//! decides it. Only exact bytes are matched: a script that prints a secret encoded (base64,
//! URL-escaped, reversed) is not caught; see docs/security.md.

use std::collections::BTreeMap;

/// A streaming redactor for one command's output.
#[derive(Debug)]
pub struct Redactor {
    /// (value, placeholder), longest value first so a secret containing another wins.
    secrets: Vec<(Vec<u8>, Vec<u8>)>,
    carry: Vec<u8>,
}

impl Redactor {
    /// A redactor for `secrets` (name → value). Empty values are ignored.
    pub fn new(secrets: &BTreeMap<String, String>) -> Redactor {
        let mut list: Vec<(Vec<u8>, Vec<u8>)> = secrets
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| {
                (value.as_bytes().to_vec(), format!("[secret:{name}]").into_bytes())
            })
            .collect();
        list.sort_by_key(|secret| std::cmp::Reverse(secret.0.len()));
        Redactor { secrets: list, carry: Vec::new() }
    }

    /// Redacts what can be decided of `chunk` (with what was held back before); holds back a
    /// tail that may begin a secret.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.secrets.is_empty() {
            return chunk.to_vec();
        }
        let mut input = std::mem::take(&mut self.carry);
        input.extend_from_slice(chunk);
        let (out, held) = self.scan(&input, false);
        self.carry = input[held..].to_vec();
        out
    }

    /// Everything still held back, redacted (the stream ended).
    pub fn finish(&mut self) -> Vec<u8> {
        let input = std::mem::take(&mut self.carry);
        self.scan(&input, true).0
    }

    /// Redacts a complete text at once.
    pub fn redact_all(secrets: &BTreeMap<String, String>, bytes: &[u8]) -> Vec<u8> {
        let mut redactor = Redactor::new(secrets);
        let mut out = redactor.push(bytes);
        out.extend(redactor.finish());
        out
    }

    /// The redacted output and the offset from which the input is held back.
    fn scan(&self, input: &[u8], at_end: bool) -> (Vec<u8>, usize) {
        let mut out = Vec::with_capacity(input.len());
        let mut i = 0;
        'scan: while i < input.len() {
            let rest = &input[i..];
            for (value, placeholder) in &self.secrets {
                if rest.starts_with(value) {
                    out.extend_from_slice(placeholder);
                    i += value.len();
                    continue 'scan;
                }
            }
            if !at_end && self.secrets.iter().any(|(value, _)| value.starts_with(rest)) {
                // The rest may be the start of a secret whose end is still to come.
                return (out, i);
            }
            out.push(input[i]);
            i += 1;
        }
        (out, input.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> BTreeMap<String, String> {
        [("TOKEN".to_string(), "hunter2-xyz".to_string()), ("SHORT".to_string(), "abcd".into())]
            .into()
    }

    fn through(chunks: &[&[u8]]) -> String {
        let mut redactor = Redactor::new(&secrets());
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(redactor.push(chunk));
        }
        out.extend(redactor.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn whole_and_split_secrets_are_redacted() {
        assert_eq!(through(&[b"token=hunter2-xyz\n"]), "token=[secret:TOKEN]\n");
        assert_eq!(through(&[b"token=hun", b"ter2", b"-xyz!"]), "token=[secret:TOKEN]!");
        assert_eq!(through(&[b"h", b"u", b"n", b"ter2-xy", b"z"]), "[secret:TOKEN]");
        assert_eq!(
            through(&[b"abcdabcd", b"ab", b"cd"]),
            "[secret:SHORT][secret:SHORT][secret:SHORT]"
        );
    }

    #[test]
    fn near_misses_come_out_unchanged_and_in_order() {
        assert_eq!(through(&[b"hunter2-xy", b"Z and abc", b"e"]), "hunter2-xyZ and abce");
        assert_eq!(through(&[b"ends with hunt"]), "ends with hunt");
        assert_eq!(through(&[b"plain", b" text"]), "plain text");
    }

    #[test]
    fn every_split_point_of_every_occurrence_is_caught() {
        let text = b"a hunter2-xyz b abcd c hunter2-xyzabcd";
        for cut in 0..=text.len() {
            let out = through(&[&text[..cut], &text[cut..]]);
            assert_eq!(
                out, "a [secret:TOKEN] b [secret:SHORT] c [secret:TOKEN][secret:SHORT]",
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn the_carry_never_exceeds_the_longest_secret() {
        let mut redactor = Redactor::new(&secrets());
        let _ = redactor.push(b"hunter2-xy");
        assert!(redactor.carry.len() < "hunter2-xyz".len());
    }
}
