//! Digit runs: payment cards (Luhn and issuer prefixes), US SSNs (the SSA's
//! invalid ranges), IPv4 addresses and phone numbers, told apart from
//! dates, times, decimals, versions and ids; and the IBAN check (mod 97 and
//! each country's length).

use super::{Entity, Finding, context};

/// At most this many digit groups in one run are looked at.
const MAX_GROUPS: usize = 16;

/// A run of digits with the separators numbers use, `[start, end)`, split
/// into its digit groups.
pub struct Run {
    pub start: usize,
    pub end: usize,
    /// End of the extension (`x123`, ` ext. 12`) after `end`, if any.
    pub ext_end: usize,
    groups: [(u32, u32); MAX_GROUPS],
    n: usize,
}

/// Reads the run that starts at `i` (a digit, `+` or `(`). Returns `None`
/// when there is no digit.
pub fn read_run(b: &[u8], i: usize) -> Option<Run> {
    let mut j = i;
    let mut last_digit_end = 0;
    let mut open = false;
    let mut run = Run {
        start: i,
        end: i,
        ext_end: i,
        groups: [(0, 0); MAX_GROUPS],
        n: 0,
    };
    let limit = (i + 48).min(b.len());
    while j < limit {
        let c = b[j];
        let next = b.get(j + 1).copied().unwrap_or(0);
        if c.is_ascii_digit() {
            let g0 = j;
            while j < limit && b[j].is_ascii_digit() {
                j += 1;
            }
            if run.n == MAX_GROUPS {
                break;
            }
            run.groups[run.n] = (g0 as u32, j as u32);
            run.n += 1;
            last_digit_end = j;
            continue;
        }
        let prev = if j > i { b[j - 1] } else { 0 };
        let ok = match c {
            b'+' => j == i && next.is_ascii_digit(),
            b'(' => !open && (next.is_ascii_digit() || next == b'+'),
            b')' => open && prev.is_ascii_digit(),
            b' ' => j > i && prev != b' ' && (next.is_ascii_digit() || next == b'('),
            b'-' | b'.' | b'/' => {
                (prev.is_ascii_digit() || prev == b')') && (next.is_ascii_digit() || next == b'(')
            }
            _ => false,
        };
        if !ok {
            break;
        }
        if c == b'(' {
            open = true;
        } else if c == b')' {
            open = false;
        }
        j += 1;
    }
    if run.n == 0 {
        return None;
    }
    run.end = last_digit_end;
    run.ext_end = extension(b, run.end);
    Some(run)
}

/// `x123`, ` x123`, ` ext. 123`, `ext123` after a phone number.
fn extension(b: &[u8], end: usize) -> usize {
    let mut k = end;
    if b.get(k) == Some(&b' ') {
        k += 1;
    }
    let rest = &b[k.min(b.len())..];
    let skip = if rest.len() >= 4 && rest[..4].eq_ignore_ascii_case(b"ext.") {
        4
    } else if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(b"ext") {
        3
    } else if rest.first().is_some_and(|c| *c == b'x' || *c == b'X') {
        1
    } else {
        return end;
    };
    k += skip;
    if b.get(k) == Some(&b' ') {
        k += 1;
    }
    let d0 = k;
    while k < b.len() && b[k].is_ascii_digit() && k - d0 < 6 {
        k += 1;
    }
    if k == d0 || b.get(k).is_some_and(|c| c.is_ascii_alphanumeric()) {
        return end;
    }
    k
}

impl Run {
    pub fn groups(&self) -> &[(u32, u32)] {
        &self.groups[..self.n]
    }

    /// Four groups of at most three digits joined by dots.
    pub fn is_dotted_quad(&self, b: &[u8]) -> bool {
        let g = self.groups();
        g.len() == 4
            && g.iter().all(|x| x.1 - x.0 <= 3)
            && g[1..].iter().all(|x| b[x.0 as usize - 1] == b'.')
            && b[self.start].is_ascii_digit()
    }
}

/// The findings in groups `[g0, g1)` of the run, whole first; when the whole
/// is nothing, its space-separated parts, leftmost-longest.
pub fn classify_run(text: &str, run: &Run, out: &mut Vec<Finding>) {
    let b = text.as_bytes();
    let groups = run.groups();
    // A CIDR block: 10.0.0.0/8.
    if groups.len() == 5 && b[groups[4].0 as usize - 1] == b'/' && (groups[4].1 - groups[4].0) <= 3
    {
        if let Some(f) = classify(text, run, 0, 4, false)
            && f.entity == Entity::IpAddress
        {
            out.push(f);
        }
        return;
    }
    if let Some(f) = classify(text, run, 0, groups.len(), false) {
        out.push(f);
        return;
    }
    // Space-separated pieces: indices of the groups that start a piece.
    let mut starts = [0usize; MAX_GROUPS];
    let mut k = 0;
    for g in 0..groups.len() {
        if g == 0
            || b[groups[g].0 as usize - 1] == b' '
            || b[groups[g].0 as usize - 1] == b'(' && b[groups[g].0 as usize - 2] == b' '
        {
            starts[k] = g;
            k += 1;
        }
    }
    if k < 2 {
        return;
    }
    // Four-digit groups are a card number (one that failed its checks), not
    // several shorter numbers; but two or more cards' worth of them may be
    // cards written one after another: each run of four groups that passes
    // as a card is one.
    if groups.len() >= 4 && groups.iter().all(|g| g.1 - g.0 == 4) {
        if groups.len() < 8 {
            return;
        }
        let mut g = 0;
        while g + 4 <= groups.len() {
            match classify(text, run, g, g + 4, true) {
                Some(f) if f.entity == Entity::CreditCard => {
                    out.push(f);
                    g += 4;
                }
                _ => g += 1,
            }
        }
        return;
    }
    let mut p = 0;
    while p < k {
        let mut found = false;
        for q in (p + 1..=k).rev() {
            if p == 0 && q == k {
                continue; // the whole, tried above
            }
            let g1 = if q == k { groups.len() } else { starts[q] };
            if let Some(f) = classify(text, run, starts[p], g1, true) {
                out.push(f);
                p = q;
                found = true;
                break;
            }
        }
        if !found {
            p += 1;
        }
    }
}

/// What the groups `[g0, g1)` are, if anything.
fn classify(text: &str, run: &Run, g0: usize, g1: usize, part: bool) -> Option<Finding> {
    let b = text.as_bytes();
    let groups = &run.groups()[g0..g1];
    let mut start = groups[0].0 as usize;
    // A leading "+" or "(" belongs to the number.
    while start > run.start && matches!(b[start - 1], b'+' | b'(') {
        start -= 1;
    }
    let end = groups[groups.len() - 1].1 as usize;
    let is_last = g1 == run.groups().len();
    let s = &b[start..end];

    let mut digits = [0u8; 24];
    let mut nd = 0;
    for &c in s {
        if c.is_ascii_digit() {
            if nd == digits.len() {
                return None;
            }
            digits[nd] = c - b'0';
            nd += 1;
        }
    }
    let d = &digits[..nd];
    let lens: ([usize; MAX_GROUPS], usize) = {
        let mut l = [0; MAX_GROUPS];
        for (k, g) in groups.iter().enumerate() {
            l[k] = (g.1 - g.0) as usize;
        }
        (l, groups.len())
    };
    let lens = &lens.0[..lens.1];
    // Separators between the groups (the byte before each group after the first).
    let mut sep_kinds = 0u8; // bits: 1 space, 2 dash, 4 dot, 8 slash, 16 paren
    for c in s {
        sep_kinds |= match c {
            b' ' => 1,
            b'-' => 2,
            b'.' => 4,
            b'/' => 8,
            b'(' | b')' => 16,
            _ => 0,
        };
    }
    let plus = s[0] == b'+';
    let ctx = context::before(b, start);
    let only = |bits: u8| sep_kinds & !bits == 0;

    // IPv4: four dotted groups of at most three digits, each <= 255.
    if lens.len() == 4 && sep_kinds == 4 && !plus {
        let ok = groups.iter().all(|g| {
            let o = &b[g.0 as usize..g.1 as usize];
            o.len() <= 3
                && (o.len() == 1 || o[0] != b'0')
                && o.iter().fold(0u32, |a, c| a * 10 + (c - b'0') as u32) <= 255
        });
        if ok {
            if ctx & context::VERSION != 0 {
                return None;
            }
            return Some(found(Entity::IpAddress, start, end, 0.9));
        }
        return None;
    }

    // US SSN: 3-2-4 with one separator kind, or nine bare digits with a cue.
    if nd == 9
        && !plus
        && ((lens == [3, 2, 4] && (sep_kinds == 1 || sep_kinds == 2)) || lens == [9])
        && ssn_valid(d)
    {
        let cue = ctx & context::SSN != 0;
        let score = match (lens.len() == 3, cue, sep_kinds) {
            (true, true, _) => 1.0,
            (true, false, 2) => 0.85,
            (true, false, _) => 0.6,
            (false, true, _) => 0.8,
            (false, false, _) => 0.0,
        };
        if score > 0.0 {
            return Some(found(Entity::UsSsn, start, end, score));
        }
    }

    // Payment card: 12-19 digits, one separator kind, Luhn, an issuer prefix.
    if (12..=19).contains(&nd)
        && !plus
        && s[0] != b'('
        && (only(1) || only(2))
        && luhn(d)
        && card_prefix(d)
    {
        let grouped_ok = lens.len() == 1 || lens.iter().all(|l| (3..=6).contains(l));
        // "card 4111 …" or "4111 … (the card ending …)".
        let cue = ctx & context::CARD != 0 || context::after_has(b, end, 24, context::CARD_CUES);
        let anti = ctx & context::ID != 0;
        if grouped_ok && (cue || !anti) {
            let score = match (nd >= 13, cue) {
                (_, true) => 1.0,
                (true, false) => 0.9,
                (false, false) => 0.45, // 12-digit Maestro numbers look like ids
            };
            return Some(found(Entity::CreditCard, start, end, score));
        }
    }

    // Phone number.
    if (7..=15).contains(&nd) {
        let intl = plus || (d[0] == 0 && d[1] == 0 && nd >= 9);
        // Dates: 2024-01-31, 31/01/2024, 12.03.2021, 01/31/24.
        let dateish = lens.len() == 3
            && sep_kinds & 16 == 0
            && ((lens[0] == 4 && lens[1] <= 2 && lens[2] <= 2)
                || (lens[0] <= 2 && lens[1] <= 2 && (lens[2] == 4 || lens[2] == 2)))
            && (!only(1) || plus);
        let dotted = sep_kinds & 4 != 0;
        // Decimals (1234.5678) and versions (10.0.19041.1): dot-separated
        // phone numbers have groups of two digits or more.
        let versionish = dotted && (lens.len() < 3 || lens.iter().any(|l| *l < 2) || nd < 10);
        let ssn_shaped = lens == [3, 2, 4] && !plus;
        // Ids that start with a year: 2024-000123, 2023/4471.
        let year_id = lens.len() == 2
            && lens[0] == 4
            && (d[..2] == [1, 9] || d[..2] == [2, 0])
            && sep_kinds & 1 == 0;
        if dateish || versionish || ssn_shaped || year_id || (sep_kinds & 8 != 0 && !plus) {
            return None;
        }
        let ext = if is_last { run.ext_end } else { end };
        let card_cue = ctx & (context::CARD | context::ACCOUNT) != 0;
        let id_cue = ctx & context::ID != 0;
        // "Number" alone says phone only when no id or card word is near.
        let cue = ctx & context::PHONE != 0
            || context::after_has(b, ext, 16, context::PHONE_AFTER_CUES)
            || (!card_cue && !id_cue && ctx & context::NUMBER != 0);
        let anti = id_cue || card_cue;
        if anti && !cue {
            return None;
        }
        // Part of a longer run: only with a cue or an international prefix.
        if part && !cue && !intl {
            return None;
        }
        // In a contact record (an e-mail address just before), a bare run
        // of a phone's length is a phone number.
        let record = !cue && (9..=12).contains(&nd) && ctx & context::AT != 0 && lens.len() == 1;
        let seps = lens.len() > 1 || sep_kinds & 16 != 0;
        let score = match (intl, seps, cue) {
            (true, _, true) => 1.0,
            (true, _, false) => 0.9,
            (false, true, true) => 0.95,
            (false, true, false) if nd >= 10 || sep_kinds & 16 != 0 => 0.75,
            (false, true, false) => 0.55,
            (false, false, true) => 0.8,
            // A bare run with a trunk prefix (0…) and a phone's length.
            (false, false, false) if d[0] == 0 && (10..=11).contains(&nd) => 0.6,
            (false, false, false) if record => 0.6,
            (false, false, false) => return None,
        };
        return Some(found(Entity::PhoneNumber, start, ext, score));
    }
    None
}

fn found(entity: Entity, start: usize, end: usize, score: f32) -> Finding {
    Finding {
        entity,
        start,
        end,
        score,
    }
}

pub fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let d = *d as u32;
        sum += if i % 2 == 1 {
            if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
        } else {
            d
        };
    }
    sum.is_multiple_of(10)
}

/// Issuer prefixes of the major networks, so that Luhn-valid ids that
/// happen to pass the checksum are less likely to count.
pub fn card_prefix(d: &[u8]) -> bool {
    let n = |k: usize| d.iter().take(k).fold(0u32, |a, x| a * 10 + *x as u32);
    match d.first() {
        Some(4) => true,                      // Visa
        Some(5) => (50..=59).contains(&n(2)), // Mastercard, Maestro
        Some(2) => (2221..=2720).contains(&n(4)) || n(4) == 2131 || n(4) == 2014 || n(4) == 2149, // Mastercard, JCB, enRoute
        Some(1) => n(4) == 1800,                                     // JCB
        Some(3) => matches!(n(2), 30 | 34 | 35 | 36 | 37 | 38 | 39), // Amex, JCB, Diners
        Some(6) => true,                                             // Discover, UnionPay, Maestro
        Some(0) => n(4) == 604,                                      // UK Maestro
        _ => false,
    }
}

pub fn ssn_valid(d: &[u8]) -> bool {
    d.len() == 9
        && d[..3] != [0, 0, 0]
        && d[..3] != [6, 6, 6]
        && d[0] != 9
        && d[3..5] != [0, 0]
        && d[5..] != [0, 0, 0, 0]
}

/// The length of the IBANs of a country (ISO 13616 registry).
pub fn iban_length(cc: &[u8]) -> Option<usize> {
    Some(match cc {
        b"NO" => 15,
        b"BE" => 16,
        b"DK" | b"FI" | b"FO" | b"GL" | b"NL" => 18,
        b"MK" | b"SI" => 19,
        b"AT" | b"BA" | b"EE" | b"KZ" | b"LT" | b"LU" | b"XK" => 20,
        b"CH" | b"CR" | b"HR" | b"LI" | b"LV" => 21,
        b"BG" | b"BH" | b"DE" | b"GB" | b"GE" | b"IE" | b"ME" | b"RS" | b"VA" => 22,
        b"AE" | b"GI" | b"IL" | b"IQ" | b"TL" => 23,
        b"AD" | b"CZ" | b"ES" | b"MD" | b"PK" | b"RO" | b"SA" | b"SE" | b"SK" | b"TN" | b"VG" => 24,
        b"PT" | b"ST" => 25,
        b"IS" | b"TR" => 26,
        b"FR" | b"GR" | b"IT" | b"MC" | b"MR" | b"SM" => 27,
        b"AL" | b"AZ" | b"BY" | b"CY" | b"DO" | b"GT" | b"HU" | b"LB" | b"PL" | b"SV" => 28,
        b"BR" | b"EG" | b"PS" | b"QA" | b"UA" => 29,
        b"JO" | b"KW" | b"MU" => 30,
        b"MT" | b"SC" => 31,
        b"LC" => 32,
        b"RU" => 33,
        _ => return None,
    })
}

/// ISO 7064 mod 97-10 over the rearranged IBAN (compact, uppercase).
pub fn iban_checksum_ok(compact: &[u8]) -> bool {
    if compact.len() < 15 {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in compact[4..].iter().chain(&compact[..4]) {
        rem = match c {
            b'0'..=b'9' => (rem * 10 + (c - b'0') as u32) % 97,
            b'A'..=b'Z' => (rem * 100 + (c - b'A') as u32 + 10) % 97,
            _ => return false,
        };
    }
    rem == 1
}
