//! PII detection: email addresses, phone numbers, payment cards (Luhn),
//! IBANs (mod-97), US SSNs, IP addresses and person names.
//!
//! Each entity has a candidate pattern and a validator; context words near
//! a candidate ("call me", "ssn", "card") raise its score. Person names need
//! more than a pattern: capitalised tokens are looked up in the US Census
//! name lists (public domain, `assets/pii/`), and a lone first name counts
//! only with a title or an introducing phrase before it.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use regex::Regex;

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
    pub score: f32,
}

struct Patterns {
    email: Regex,
    phone: Regex,
    card: Regex,
    iban: Regex,
    ssn: Regex,
    ipv4: Regex,
    ipv6: Regex,
    date: Regex,
    word: Regex,
    first: HashSet<&'static str>,
    /// Surname → frequency rank (0 = most common).
    last: HashMap<&'static str, u32>,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| Patterns {
        email: Regex::new(
            r"(?-u)(?i)\b[a-z0-9][a-z0-9._%+-]{0,63}@[a-z0-9](?:[a-z0-9-]{0,62}\.)+[a-z]{2,24}\b",
        )
        .unwrap(),
        // Digits with the separators phone numbers use; validated below.
        phone: Regex::new(
            r"(?-u)(?:\+|\b00|\()?\d[\d \t().\-/]{5,22}\d(?:\s?(?:x|ext\.?)\s?\d{1,6})?\b",
        )
        .unwrap(),
        date: Regex::new(
            r"(?-u)\b(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})\b",
        )
        .unwrap(),
        card: Regex::new(r"(?-u)\b\d(?:[ -]?\d){11,18}\b").unwrap(),
        iban: Regex::new(r"(?-u)\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b").unwrap(),
        ssn: Regex::new(r"(?-u)\b\d{3}([- ]?)\d{2}([- ]?)\d{4}\b").unwrap(),
        ipv4: Regex::new(r"(?-u)\b(?:\d{1,3}\.){3}\d{1,3}\b").unwrap(),
        ipv6: Regex::new(r"(?-u)(?i)(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}").unwrap(),
        // Unicode letters: names are not all ASCII (Élise, Jáuregui).
        word: Regex::new(r"\p{Lu}\p{Ll}+(?:[-'’]\p{Lu}\p{Ll}+)?").unwrap(),
        first: include_str!("../assets/pii/first_names.txt")
            .lines()
            .collect(),
        last: include_str!("../assets/pii/last_names.txt")
            .lines()
            .zip(0u32..)
            .collect(),
    })
}

/// Capitalised words that are names in the census lists but far more often
/// ordinary words at the start of a sentence or in titles.
const NOT_NAMES: &[&str] = &[
    "will",
    "may",
    "can",
    "june",
    "april",
    "august",
    "mark",
    "bill",
    "grant",
    "rose",
    "faith",
    "hope",
    "joy",
    "summer",
    "dawn",
    "art",
    "don",
    "guy",
    "ray",
    "sky",
    "page",
    "love",
    "sunny",
    "lane",
    "major",
    "king",
    "young",
    "white",
    "black",
    "brown",
    "green",
    "long",
    "dear",
    "thanks",
    "hello",
    "regards",
    "best",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "september",
    "october",
    "november",
    "december",
    "god",
    "lord",
    "christian",
    "english",
    "french",
    "german",
    "american",
    "street",
    "avenue",
    "road",
    "the",
    "this",
    "that",
    "please",
    "sure",
    "yes",
    "no",
    "ok",
    "okay",
    "an",
    "in",
    "on",
    "so",
    "my",
    "we",
    "our",
    "his",
    "her",
    "their",
    "here",
    "there",
    "when",
    "what",
    "who",
    "why",
    "how",
    "if",
    "else",
    "all",
    "new",
    "north",
    "south",
    "east",
    "west",
    "bank",
    "card",
    "phone",
    "email",
    "mail",
    "call",
    "contact",
    "account",
    "customer",
];

/// Surnames this frequent count on their own in a capitalised pair.
const COMMON_SURNAMES: u32 = 10_000;

const PERSON_CUES: &[&str] = &[
    "my name is ",
    "name is ",
    "name: ",
    "i am ",
    "i'm ",
    "this is ",
    "dear ",
    "hi ",
    "hello ",
    "mr. ",
    "mrs. ",
    "ms. ",
    "dr. ",
    "mr ",
    "mrs ",
    "ms ",
    "dr ",
    "prof. ",
    "signed, ",
    "regards, ",
    "sincerely, ",
    "from ",
    "ask for ",
    "contact ",
    "by ",
    "with ",
    "patient ",
    "employee ",
    "customer ",
    "user ",
    "called ",
    "named ",
    "to ",
    "contact is ",
    "holder ",
    "thanks, ",
    "thanks ",
    "spoke with ",
    "met with ",
    "from: ",
    "cc ",
    "name ",
    "follow up with ",
    "signed ",
    "belongs to ",
    "opened by ",
    "and ",
    "asked by ",
];

/// Phrases after which even a name missing from the lists is a name.
const STRONG_PERSON_CUES: &[&str] = &[
    "name ",
    "my name is ",
    "name is ",
    "name: ",
    "dear ",
    "mr. ",
    "mrs. ",
    "ms. ",
    "dr. ",
    "signed, ",
    "regards, ",
    "sincerely, ",
    "ask for ",
    "contact is ",
    "holder ",
    "thanks, ",
    "spoke with ",
    "met with ",
    "from: ",
    "employee ",
    "patient ",
    "belongs to ",
    "opened by ",
    "follow up with ",
    "named ",
    "called ",
];

const PHONE_CUES: &[&str] = &[
    "phone",
    "call",
    "tel",
    "mobile",
    "cell",
    "whatsapp",
    "fax",
    "reach me",
    "reached",
    "reach",
    "text",
    "ping",
    "sent to",
    "whatsapp",
    "sms",
    "number",
    "contact",
    "dial",
    "voicemail",
];
const CARD_CUES: &[&str] = &[
    "card",
    "visa",
    "mastercard",
    "amex",
    "credit",
    "debit",
    "payment",
    "cc ",
    "paid",
    "pay ",
    "charge",
];
const SSN_CUES: &[&str] = &["ssn", "social security", "social sec", "tax id", "taxpayer"];
const NOT_PHONE_CUES: &[&str] = &[
    "order",
    "invoice",
    "ticket",
    "ref",
    "id ",
    "id:",
    "#",
    "tracking",
    "account no",
    "serial",
    "version",
    "build",
];

pub struct Detector {
    entities: [bool; 7],
    min_score: f32,
}

fn idx(e: Entity) -> usize {
    Entity::ALL.iter().position(|x| *x == e).unwrap_or(0)
}

impl Detector {
    pub fn new(entities: &[Entity], min_score: f32) -> Detector {
        let mut on = [false; 7];
        for e in entities {
            on[idx(*e)] = true;
        }
        patterns(); // compile once, now rather than on the first request
        Detector {
            entities: on,
            min_score,
        }
    }

    /// The longest span any entity can have, in characters (IBANs with
    /// spaces are the longest): what a streaming redactor must hold back.
    pub fn max_entity_len() -> usize {
        64
    }

    fn wants(&self, e: Entity) -> bool {
        self.entities[idx(e)]
    }

    /// Findings sorted by start, non-overlapping, with score ≥ min_score.
    pub fn find(&self, text: &str) -> Vec<Finding> {
        let p = patterns();
        let mut all = Vec::new();
        let lower = text.to_ascii_lowercase();
        let before = |start: usize, n: usize| -> &str {
            let mut from = start.saturating_sub(n);
            while !lower.is_char_boundary(from) {
                from += 1;
            }
            &lower[from..start]
        };
        let has = |start: usize, cues: &[&str]| cues.iter().any(|c| before(start, 40).contains(c));
        let mut push = |entity: Entity, start: usize, end: usize, score: f32| {
            all.push(Finding {
                entity,
                start,
                end,
                score: score.min(1.0),
            });
        };

        if self.wants(Entity::EmailAddress) {
            for m in p.email.find_iter(text) {
                push(Entity::EmailAddress, m.start(), m.end(), 0.95);
            }
        }
        if self.wants(Entity::Iban) {
            for m in p.iban.find_iter(text) {
                if iban_valid(m.as_str()) {
                    push(Entity::Iban, m.start(), m.end(), 0.95);
                }
            }
        }
        if self.wants(Entity::CreditCard) {
            for m in p.card.find_iter(text) {
                let digits: Vec<u8> = m
                    .as_str()
                    .bytes()
                    .filter(u8::is_ascii_digit)
                    .map(|b| b - b'0')
                    .collect();
                if luhn(&digits) && card_prefix(&digits) && consistent_separators(m.as_str()) {
                    let cue = has(m.start(), CARD_CUES);
                    // 12-digit Maestro numbers look like ids: only with a cue.
                    let score = match (digits.len() >= 13, cue) {
                        (_, true) => 1.0,
                        (true, false) => 0.9,
                        (false, false) => 0.45,
                    };
                    push(Entity::CreditCard, m.start(), m.end(), score);
                }
            }
        }
        if self.wants(Entity::UsSsn) {
            for c in p.ssn.captures_iter(text) {
                let m = c.get(0).unwrap();
                let (s1, s2) = (
                    c.get(1).map_or("", |x| x.as_str()),
                    c.get(2).map_or("", |x| x.as_str()),
                );
                let digits: Vec<u8> = m.as_str().bytes().filter(u8::is_ascii_digit).collect();
                if s1 != s2 || !ssn_valid(&digits) || glued(text, m.start(), m.end()) {
                    continue;
                }
                let cue = has(m.start(), SSN_CUES);
                // Nine bare digits are an SSN only when something says so.
                let score = match (s1.is_empty(), cue) {
                    (false, true) => 1.0,
                    (false, false) => 0.85,
                    (true, true) => 0.8,
                    (true, false) => 0.0,
                };
                push(Entity::UsSsn, m.start(), m.end(), score);
            }
        }
        if self.wants(Entity::IpAddress) {
            for m in p.ipv4.find_iter(text) {
                let ok = m.as_str().split('.').all(|o| {
                    o.parse::<u16>().is_ok_and(|v| v <= 255)
                        && (o.len() == 1 || !o.starts_with('0'))
                });
                let b = before(m.start(), 10);
                let versionish =
                    b.ends_with('v') || b.contains("version") || glued(text, m.start(), m.end());
                if ok && !versionish {
                    push(Entity::IpAddress, m.start(), m.end(), 0.9);
                }
            }
            for m in p.ipv6.find_iter(text) {
                let s = m.as_str().trim_end_matches(':');
                if s.matches(':').count() >= 2
                    && s.parse::<std::net::Ipv6Addr>().is_ok()
                    && s.chars()
                        .any(|c| c.is_ascii_alphabetic() || s.contains("::"))
                {
                    push(Entity::IpAddress, m.start(), m.start() + s.len(), 0.9);
                }
            }
        }
        if self.wants(Entity::PhoneNumber) {
            for m in p.phone.find_iter(text) {
                let (start, end) = (m.start(), m.end());
                if p.date.is_match(m.as_str()) {
                    continue;
                }
                if let Some(score) = phone_score(
                    m.as_str(),
                    has(start, PHONE_CUES),
                    has(start, NOT_PHONE_CUES) || before(start, 2).contains('#'),
                ) && !glued(text, start, end)
                {
                    push(Entity::PhoneNumber, start, end, score);
                }
            }
        }
        if self.wants(Entity::Person) {
            self.persons(text, &lower, p, &mut all);
        }
        resolve(all, self.min_score)
    }

    fn persons(&self, text: &str, lower: &str, p: &Patterns, out: &mut Vec<Finding>) {
        // Whole words only: not the tail of "McDonald" or of "iPhone".
        let words: Vec<regex::Match> = p
            .word
            .find_iter(text)
            .filter(|m| {
                !text[..m.start()]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_alphanumeric)
                    && !text[m.end()..]
                        .chars()
                        .next()
                        .is_some_and(char::is_alphanumeric)
            })
            .collect();
        let mut i = 0;
        while i < words.len() {
            let w = words[i];
            let lw = &lower[w.start()..w.end()];
            let first_part = lw.split(['-', '\'']).next().unwrap_or(lw);
            let is_first = p.first.contains(first_part) && !NOT_NAMES.contains(&lw);
            let mut ctx_from = w.start().saturating_sub(24);
            while !lower.is_char_boundary(ctx_from) {
                ctx_from += 1;
            }
            let ctx = &lower[ctx_from..w.start()];
            let cued = PERSON_CUES.iter().any(|c| ctx.ends_with(c));
            let strong = STRONG_PERSON_CUES.iter().any(|c| ctx.ends_with(c));
            let titled = [
                "mr. ", "mrs. ", "ms. ", "dr. ", "mr ", "mrs ", "ms ", "dr ", "prof. ",
            ]
            .iter()
            .any(|c| ctx.ends_with(c));
            // Following capitalised words right after (one space) extend the name.
            let mut j = i;
            while j + 1 < words.len()
                && j - i < 2
                && text[words[j].end()..words[j + 1].start()] == *" "
            {
                let next = &lower[words[j + 1].start()..words[j + 1].end()];
                // "Robert Lane": a common word that is also a surname still
                // ends a name that starts with a known first name.
                let cur = &lower[words[j].start()..words[j].end()];
                if NOT_NAMES.contains(&next)
                    && !(p.first.contains(cur) && p.last.contains_key(next))
                {
                    break;
                }
                j += 1;
            }
            let last_word = &lower[words[j].start()..words[j].end()];
            let surname_rank = p
                .last
                .get(
                    last_word
                        .split(['-', '\''])
                        .next_back()
                        .unwrap_or(last_word),
                )
                .copied();
            let last_known = j > i && surname_rank.is_some();
            // Without a known first name, only a common surname will do:
            // rare ones include ordinary words ("Cloud", "Nations").
            let common_surname = j > i && surname_rank.is_some_and(|r| r < COMMON_SURNAMES);
            let score = if is_first && last_known {
                if cued { 0.95 } else { 0.85 }
            } else if titled {
                0.85
            } else if is_first && cued {
                0.75
            } else if is_first && j > i {
                0.6
            } else if strong && (!NOT_NAMES.contains(&lw) || last_known) {
                if j > i { 0.7 } else { 0.55 }
            } else if j > i
                && !NOT_NAMES.contains(&lw)
                && common_surname
                && !sentence_start(text, w.start())
            {
                // Two capitalised words mid-sentence (or after a form's
                // "Label:") ending in a known surname: a name whose first
                // name the lists lack.
                0.6
            } else {
                0.0
            };
            if score > 0.0 {
                out.push(Finding {
                    entity: Entity::Person,
                    start: w.start(),
                    end: words[j].end(),
                    score,
                });
                i = j + 1;
            } else {
                i += 1;
            }
        }
    }
}

/// Whether the word at `start` opens a sentence (capitalised anyway).
fn sentence_start(text: &str, start: usize) -> bool {
    let before = text[..start].trim_end();
    before.is_empty() || before.ends_with(['.', '!', '?', '\n', '"'])
}

/// A digit run directly attached to letters or more digits (part of an id,
/// a hash or a UUID) is not an entity on its own.
fn glued(text: &str, start: usize, end: usize) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let prev = text[..start].chars().next_back();
    let next = text[end..].chars().next();
    let joined_before = prev == Some('-') && alnum(text[..start - 1].chars().next_back());
    let joined_after = next == Some('-') && alnum(text[end + 1..].chars().next());
    alnum(prev) || alnum(next) || joined_before || joined_after
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = *d as u32;
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    digits.len() >= 12 && sum.is_multiple_of(10)
}

/// Issuer prefixes of the major networks, so Luhn-valid order numbers that
/// happen to pass the checksum are less likely to count.
fn card_prefix(d: &[u8]) -> bool {
    let n = |k: usize| d.iter().take(k).fold(0u32, |a, x| a * 10 + *x as u32);
    match d.first() {
        Some(4) => true,
        Some(5) => (51..=55).contains(&n(2)) || n(2) == 50 || (56..=59).contains(&n(2)), // Mastercard, Maestro
        Some(2) => (2221..=2720).contains(&n(4)) || n(4) == 2131, // Mastercard, JCB
        Some(1) => n(4) == 1800,                                  // JCB
        Some(0) => n(4) == 604,                                   // UK Maestro 0604
        Some(3) => matches!(n(2), 34 | 37 | 35 | 36 | 38 | 30),
        Some(6) => true, // Discover, UnionPay, Maestro 6x
        _ => false,
    }
}

/// `4111 1111 1111 1111` or `4111-1111-…` or plain: one separator kind.
fn consistent_separators(s: &str) -> bool {
    !(s.contains(' ') && s.contains('-'))
}

fn iban_valid(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let rearranged = format!("{}{}", &compact[4..], &compact[..4]);
    let mut rem: u32 = 0;
    for c in rearranged.chars() {
        let v = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn ssn_valid(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let area = &d[..3];
    area != b"000" && area != b"666" && area[0] != b'9' && &d[3..5] != b"00" && &d[5..] != b"0000"
}

/// A score for a phone-number candidate, or `None` when it is something else
/// (a date, a time, a decimal, an id).
fn phone_score(s: &str, cue: bool, anti_cue: bool) -> Option<f32> {
    // The extension (x123) does not count towards the number's length.
    let main = s.split(['x', 'e']).next().unwrap_or(s).trim_end();
    let digits = main.bytes().filter(u8::is_ascii_digit).count();
    if !(7..=15).contains(&digits) {
        return None;
    }
    let intl = s.starts_with('+') || s.starts_with("00");
    let seps = s
        .bytes()
        .filter(|b| matches!(b, b' ' | b'-' | b'.' | b'(' | b')' | b'/'))
        .count();
    // Dates and times: 2024-01-31, 31/01/2024, 12.03.2021.
    let groups: Vec<&str> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    let dateish = groups.len() == 3
        && groups.iter().any(|g| g.len() == 4)
        && groups.iter().filter(|g| g.len() <= 2).count() == 2;
    // SSN-shaped (3-2-4) runs are SSNs or nothing, never phones.
    let ssn_shaped = groups.iter().map(|g| g.len()).eq([3, 2, 4]);
    let ipv4_shaped = s.matches('.').count() == 3 && groups.len() == 4;
    if dateish || ssn_shaped || ipv4_shaped || s.contains('\t') || s.matches('.').count() == 1 {
        return None;
    }
    if anti_cue && !cue {
        return None;
    }
    let score = match (intl, seps > 0, cue) {
        (true, _, _) => 0.9,
        (false, true, true) => 0.9,
        (false, true, false) if digits >= 10 || s.contains('(') => 0.75,
        (false, true, false) => 0.55,
        (false, false, true) => 0.7,
        // A bare run with a national trunk prefix (0…) and a phone's length.
        (false, false, false) if s.starts_with('0') && (10..=11).contains(&digits) => 0.6,
        (false, false, false) => return None, // a bare digit run: an id more often than a phone
    };
    Some(score)
}

/// Keeps the findings above `min_score`; where they overlap, the more
/// specific entity (then the higher score, then the longer span) wins.
fn resolve(mut all: Vec<Finding>, min_score: f32) -> Vec<Finding> {
    all.retain(|f| f.score >= min_score && f.end > f.start);
    all.sort_by(|a, b| {
        b.entity
            .priority()
            .cmp(&a.entity.priority())
            .then(b.score.total_cmp(&a.score))
            .then((b.end - b.start).cmp(&(a.end - a.start)))
    });
    let mut kept: Vec<Finding> = Vec::new();
    for f in all {
        if kept.iter().all(|k| f.end <= k.start || f.start >= k.end) {
            kept.push(f);
        }
    }
    kept.sort_by_key(|f| f.start);
    kept
}

/// Replaces each finding with its typed placeholder, e.g. `<EMAIL_ADDRESS>`.
pub fn redact(text: &str, findings: &[Finding]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for f in findings {
        if f.start < last || f.end > text.len() {
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
