//! PII detection: person names, e-mail addresses, phone numbers, payment
//! cards (Luhn), IBANs (mod 97), US SSNs and IP addresses.
//!
//! One pass over the bytes of the text finds the candidates: a token that
//! reaches an `@` is an e-mail candidate, a run of digits and separators a
//! card, SSN, IPv4 or phone candidate ([`numbers`]), a hex group followed by
//! `:` an IPv6 candidate, two capitals and two digits an IBAN candidate, and
//! a capitalised word a PERSON candidate ([`person`]). Each candidate is
//! validated (checksums, number ranges, shapes of dates, times, versions and
//! ids) and scored; context words near it ("call me", "ssn", "card",
//! "order #") raise or lower the score. Person names are judged with the
//! name lists in `assets/pii/` (US Census 1990, public domain; mimesis, MIT),
//! an English word list (SCOWL, permissive) and introducing phrases.
//! Tokens glued to letters or ids (SHAs, UUIDs, `ORD-2024-…`, `v1.2.3.4`) and
//! URLs are skipped whole.

mod context;
mod cues;
mod lexicon;
mod numbers;
mod person;

use lexicon::Lexicon;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    Person,
    EmailAddress,
    PhoneNumber,
    CreditCard,
    Iban,
    UsSsn,
    IpAddress,
}

impl Entity {
    pub const ALL: [Entity; 7] = [
        Entity::Person,
        Entity::EmailAddress,
        Entity::PhoneNumber,
        Entity::CreditCard,
        Entity::Iban,
        Entity::UsSsn,
        Entity::IpAddress,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Entity::Person => "PERSON",
            Entity::EmailAddress => "EMAIL_ADDRESS",
            Entity::PhoneNumber => "PHONE_NUMBER",
            Entity::CreditCard => "CREDIT_CARD",
            Entity::Iban => "IBAN",
            Entity::UsSsn => "US_SSN",
            Entity::IpAddress => "IP_ADDRESS",
        }
    }

    pub fn from_name(s: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.name() == s)
    }

    fn index(self) -> usize {
        self as usize
    }

    /// When two findings overlap, the more specific one wins.
    fn priority(self) -> u8 {
        match self {
            Entity::EmailAddress => 7,
            Entity::Iban => 6,
            Entity::CreditCard => 5,
            Entity::UsSsn => 4,
            Entity::IpAddress => 3,
            Entity::PhoneNumber => 2,
            Entity::Person => 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub entity: Entity,
    /// Byte offsets into the text, on char boundaries.
    pub start: usize,
    pub end: usize,
    /// 0..=1.
    pub score: f32,
}

pub struct Detector {
    on: [bool; 7],
    min_score: f32,
    lexicon: &'static Lexicon,
}

/// The longest local part of an e-mail address (RFC 5321).
const MAX_LOCAL_PART: usize = 64;

impl Detector {
    /// Builds a detector for `entities`; findings scoring below `min_score`
    /// are dropped. The word lists are built once per process (first call).
    pub fn new(entities: &[Entity], min_score: f32) -> Detector {
        let mut on = [false; 7];
        for e in entities {
            on[e.index()] = true;
        }
        context::warm();
        Detector {
            on,
            min_score,
            lexicon: Lexicon::get(),
        }
    }

    /// The longest span any entity can have, in characters: person names
    /// are cut off at 64, IBANs with spaces take at most 42, phone numbers
    /// with an extension at most 60, IPv6 addresses 45. A streaming redactor
    /// holding back this many characters never lets one through split across
    /// chunks. The one exception: an e-mail address longer than 64
    /// characters (the local part alone may have 64) is still reported whole
    /// rather than let through, so only a streamed one can slip.
    pub fn max_entity_len() -> usize {
        64
    }

    fn wants(&self, e: Entity) -> bool {
        self.on[e.index()]
    }

    /// Findings sorted by start, non-overlapping, with score ≥ min_score.
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let b = text.as_bytes();
        let mut out: Vec<Finding> = Vec::new();
        let persons = self.wants(Entity::Person);
        let numbers = self.wants(Entity::PhoneNumber)
            || self.wants(Entity::CreditCard)
            || self.wants(Entity::UsSsn)
            || self.wants(Entity::IpAddress);
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if !text.is_char_boundary(i) {
                i += 1;
                continue;
            }
            let inside_word = i > 0
                && if b[i - 1] < 0x80 {
                    b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'
                } else {
                    text[..i]
                        .chars()
                        .next_back()
                        .is_some_and(char::is_alphanumeric)
                };
            if inside_word {
                i += 1;
                continue;
            }
            if c >= 0x80 {
                // A non-ASCII letter: a name may start with one (Émile, Özil).
                let Some(ch) = text[i..].chars().next() else {
                    break;
                };
                if persons && ch.is_uppercase() {
                    i = person::person_at(text, i, self.lexicon, &mut out);
                } else {
                    i += ch.len_utf8();
                }
                continue;
            }
            if c.is_ascii_alphanumeric() {
                i = self.token(text, i, persons, numbers, &mut out);
                continue;
            }
            match c {
                b'+' | b'(' if numbers && b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                    i = self.digits(text, i, &mut out);
                }
                b':' if b.get(i + 1) == Some(&b':') && self.wants(Entity::IpAddress) => {
                    i = match ipv6_at(text, i) {
                        Some(end) => {
                            out.push(finding(Entity::IpAddress, i, end, 0.9));
                            end
                        }
                        None => i + 2,
                    };
                }
                _ => i += 1,
            }
        }
        resolve(out, &self.on, self.min_score)
    }

    /// A token that starts at `i` with an ASCII letter or digit.
    fn token(
        &self,
        text: &str,
        i: usize,
        persons: bool,
        numbers: bool,
        out: &mut Vec<Finding>,
    ) -> usize {
        let b = text.as_bytes();
        let mut t = i;
        let (mut letters, mut digits, mut hex) = (0, 0, true);
        while t < b.len() && (b[t].is_ascii_alphanumeric() || b[t] == b'_') {
            if b[t].is_ascii_digit() {
                digits += 1;
            } else {
                letters += 1;
                hex &= b[t].is_ascii_hexdigit();
            }
            t += 1;
        }
        let next = b.get(t).copied().unwrap_or(0);
        // URLs: skipped whole.
        if next == b':' && b[t..].starts_with(b"://") {
            let mut k = t;
            while k < b.len() && !b[k].is_ascii_whitespace() && b[k] != b'"' && b[k] != b'>' {
                k += 1;
            }
            return k;
        }
        // E-mail: the local part runs on to an '@'.
        if matches!(next, b'@' | b'.' | b'-' | b'+' | b'%') {
            let mut k = t;
            while k < b.len()
                && k - i <= MAX_LOCAL_PART
                && (b[k].is_ascii_alphanumeric()
                    || matches!(b[k], b'.' | b'_' | b'%' | b'+' | b'-'))
            {
                k += 1;
            }
            if b.get(k) == Some(&b'@')
                && let Some(end) = email_domain(b, k + 1)
            {
                if self.wants(Entity::EmailAddress) {
                    out.push(finding(Entity::EmailAddress, i, end, 0.95));
                }
                return end;
            }
        }
        // IPv6: a group of at most four hex digits and a colon.
        if next == b':'
            && hex
            && t - i <= 4
            && self.wants(Entity::IpAddress)
            && let Some(end) = ipv6_at(text, i)
        {
            out.push(finding(Entity::IpAddress, i, end, 0.9));
            return end;
        }
        if letters == 0 {
            return if numbers {
                self.digits(text, i, out)
            } else {
                t
            };
        }
        // IBAN: two capitals and two check digits.
        if t - i >= 4
            && b[i].is_ascii_uppercase()
            && b[i + 1].is_ascii_uppercase()
            && b[i + 2].is_ascii_digit()
            && b[i + 3].is_ascii_digit()
            && let Some(end) = iban_at(b, i)
        {
            if self.wants(Entity::Iban) {
                out.push(finding(Entity::Iban, i, end, 0.95));
            }
            return end;
        }
        if digits > 0 || next == b'_' {
            return t; // an identifier: abc123, 9fceb02d, v1
        }
        if persons && b[i].is_ascii_uppercase() {
            return person::person_at(text, i, self.lexicon, out);
        }
        // The rest of a word with non-ASCII letters ("école").
        let mut k = t;
        while k < b.len() && (b[k] >= 0x80 || b[k].is_ascii_alphanumeric()) {
            k += 1;
        }
        k
    }

    /// A run of digits (and `+`, `(`) at `i`.
    fn digits(&self, text: &str, i: usize, out: &mut Vec<Finding>) -> usize {
        let b = text.as_bytes();
        // Glued to an id before: "ORD-2024-1", "v1.2.3", "id=123", "/orders/123".
        if i >= 2
            && matches!(
                b[i - 1],
                b'.' | b'-' | b'_' | b'/' | b'&' | b'#' | b'@' | b'\\' | b'$'
            )
            && b[i - 2].is_ascii_alphanumeric()
        {
            return skip_number(b, i).max(i + 1);
        }
        let Some(run) = numbers::read_run(b, i) else {
            return i + 1;
        };
        let after = run.ext_end;
        let glued_after = match b.get(after) {
            Some(c) if c.is_ascii_alphanumeric() || *c == b'_' => true,
            // "555-0100-Office" is a labelled number; "2024-0001-ab12" and
            // "12345678-abcd-…" are ids.
            Some(b'-') => {
                b.get(after + 1).is_some_and(|c| c.is_ascii_alphanumeric())
                    && !label_after(b, after + 1)
            }
            Some(b'_' | b'@' | b'.' | b'/') => {
                b.get(after + 1).is_some_and(|c| c.is_ascii_alphanumeric())
                    && !(b[after] == b'.' && b.get(after + 1).is_some_and(u8::is_ascii_uppercase))
            }
            // Times (10:22:31), but an IPv4 address may carry a port.
            Some(b':') => {
                b.get(after + 1).is_some_and(u8::is_ascii_digit) && !run.is_dotted_quad(b)
            }
            _ => false,
        };
        if glued_after {
            return skip_number(b, after);
        }
        numbers::classify_run(text, &run, out);
        after.max(i + 1)
    }
}

/// A word of letters at `i` that is not a hex group: "Office", "Fax".
fn label_after(b: &[u8], i: usize) -> bool {
    let mut k = i;
    while k < b.len() && b[k].is_ascii_alphabetic() {
        k += 1;
    }
    k > i
        && !b.get(k).is_some_and(|c| c.is_ascii_digit() || *c == b'_')
        && b[i..k].iter().any(|c| !c.is_ascii_hexdigit())
}

/// Past the id or number that goes on at `i`.
fn skip_number(b: &[u8], mut i: usize) -> usize {
    while i < b.len()
        && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'.' | b'-' | b'_' | b':' | b'/'))
    {
        i += 1;
    }
    i
}

fn finding(entity: Entity, start: usize, end: usize, score: f32) -> Finding {
    Finding {
        entity,
        start,
        end,
        score,
    }
}

/// The end of the domain of an e-mail address that starts at `i`: labels of
/// letters, digits and hyphens, at least two, the last one letters only.
fn email_domain(b: &[u8], i: usize) -> Option<usize> {
    let mut k = i;
    let mut labels = 0;
    let mut last_label = (i, i);
    loop {
        let l0 = k;
        while k < b.len() && (b[k].is_ascii_alphanumeric() || b[k] == b'-') && k - l0 < 63 {
            k += 1;
        }
        if k == l0 || b[l0] == b'-' || b[k - 1] == b'-' {
            break;
        }
        labels += 1;
        last_label = (l0, k);
        if b.get(k) == Some(&b'.') && b.get(k + 1).is_some_and(|c| c.is_ascii_alphanumeric()) {
            k += 1;
            continue;
        }
        break;
    }
    let tld = &b[last_label.0..last_label.1];
    let ok = labels >= 2
        && tld.len() >= 2
        && tld.iter().all(u8::is_ascii_alphabetic)
        && !b
            .get(last_label.1)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'@');
    ok.then_some(last_label.1)
}

/// An IPv6 address at `i`, checked by the standard library's parser.
fn ipv6_at(text: &str, i: usize) -> Option<usize> {
    let b = text.as_bytes();
    if i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b':') {
        return None;
    }
    let mut k = i;
    while k < b.len() && k - i < 45 && (b[k].is_ascii_hexdigit() || b[k] == b':' || b[k] == b'.') {
        k += 1;
    }
    let mut end = k;
    // Trailing punctuation: "… 2001:db8::1." or "fe80::1: down".
    while end > i
        && (b[end - 1] == b'.' || (b[end - 1] == b':' && !(end >= 2 && b[end - 2] == b':')))
    {
        end -= 1;
    }
    let s = &text[i..end];
    if b.get(k).is_some_and(|c| c.is_ascii_alphanumeric())
        || s.bytes().filter(|c| *c == b':').count() < 2
        || !s.bytes().any(|c| c.is_ascii_hexdigit())
    {
        return None;
    }
    s.parse::<std::net::Ipv6Addr>().ok().map(|_| end)
}

/// An IBAN at `i` (which starts with two capitals and two digits): the
/// country's length in letters and digits, single spaces allowed between
/// them, then a word boundary and a valid mod-97 checksum.
fn iban_at(b: &[u8], i: usize) -> Option<usize> {
    let len = numbers::iban_length(&b[i..i + 2])?;
    let mut compact = [0u8; 34];
    let mut n = 0;
    let mut k = i;
    while n < len && k < b.len() {
        let c = b[k];
        if c.is_ascii_uppercase() || c.is_ascii_digit() {
            compact[n] = c;
            n += 1;
            k += 1;
        } else if c == b' '
            && n >= 4
            && b.get(k + 1)
                .is_some_and(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            k += 1;
        } else {
            return None;
        }
    }
    if n < len || b.get(k).is_some_and(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    numbers::iban_checksum_ok(&compact[..n]).then_some(k)
}

/// Keeps the wanted findings scoring at least `min_score`; where they
/// overlap, the more specific entity (then the higher score, then the
/// longer span) wins.
fn resolve(mut all: Vec<Finding>, on: &[bool; 7], min_score: f32) -> Vec<Finding> {
    all.retain(|f| on[f.entity.index()] && f.score >= min_score && f.end > f.start);
    if all.len() > 1 {
        all.sort_by(|a, b| {
            b.entity
                .priority()
                .cmp(&a.entity.priority())
                .then(b.score.total_cmp(&a.score))
                .then((b.end - b.start).cmp(&(a.end - a.start)))
        });
        // Kept spans by start. They never overlap, so ordered by start they
        // are ordered by end too, and only the last one starting before
        // `f.end` can overlap `f`: one lookup per finding, where comparing
        // with every kept span made dense input quadratic.
        let mut kept: std::collections::BTreeMap<usize, Finding> = Default::default();
        for f in all {
            let clear = kept
                .range(..f.end)
                .next_back()
                .is_none_or(|(_, k)| k.end <= f.start);
            if clear {
                kept.insert(f.start, f);
            }
        }
        return kept.into_values().collect();
    }
    all
}

/// Replaces each finding with its typed placeholder, e.g. `<EMAIL_ADDRESS>`.
/// Findings that overlap an earlier one or fall outside the text are skipped.
pub fn redact(text: &str, findings: &[Finding]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for f in findings {
        if f.start < last
            || f.end > text.len()
            || f.start > f.end
            || !text.is_char_boundary(f.start)
            || !text.is_char_boundary(f.end)
        {
            continue;
        }
        out.push_str(&text[last..f.start]);
        out.push('<');
        out.push_str(f.entity.name());
        out.push('>');
        last = f.end;
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests;
