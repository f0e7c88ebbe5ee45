//! PERSON: runs of capitalised words, judged by the name lists (first names,
//! surnames, ordinary English words), titles, introducing phrases ("my name
//! is", "Dear", "Sincerely,") and what ends a company or an address.

use super::cues;
use super::lexicon::{self, Lexicon};
use super::{Entity, Finding};

/// One word of the text.
#[derive(Clone, Copy)]
struct Word {
    start: usize,
    /// End without a possessive "'s".
    end: usize,
    /// Just after the word (possessive included).
    next: usize,
    flags: u16,
    /// Starts with an uppercase letter and is not all capitals.
    cap: bool,
    /// Digits or underscores right after: part of an identifier.
    glued: bool,
    /// Comes after a particle ("van Dam"): a surname, not a street word.
    after_particle: bool,
}

impl Word {
    fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }
    /// Could be part of a name: not a stop word, and a listed name or no
    /// ordinary word.
    fn nameish(&self) -> bool {
        !self.has(lexicon::STOP)
            && (self.has(lexicon::FIRST | lexicon::LAST)
                || !self.has(lexicon::WORD | lexicon::AMBIGUOUS))
    }
    /// A first name that is not also an ordinary word ("John", not "Will").
    fn clear_first(&self) -> bool {
        self.has(lexicon::FIRST) && !self.has(lexicon::WORD | lexicon::STOP | lexicon::AMBIGUOUS)
    }
}

fn is_letter(c: char) -> bool {
    c.is_alphabetic()
}

/// Reads the word at `i` (which starts with a letter).
fn read_word(text: &str, i: usize, lex: &Lexicon) -> Word {
    let b = text.as_bytes();
    let mut buf = [0u8; 48];
    let mut n = 0usize;
    let mut overflow = false;
    let mut j = i;
    let mut first = true;
    let mut cap = false;
    let mut all_upper = true;
    let mut letters = 0;
    let mut hyphen = false;
    let mut lower_part = false;
    while j < b.len() {
        let (c, len) = if b[j] < 0x80 {
            (b[j] as char, 1)
        } else {
            match text[j..].chars().next() {
                Some(c) => (c, c.len_utf8()),
                None => break,
            }
        };
        if is_letter(c) {
            if first {
                cap = c.is_uppercase();
            } else if c.is_lowercase() {
                all_upper = false;
            }
            first = false;
            letters += 1;
            if c.is_ascii() {
                if n < buf.len() {
                    buf[n] = (c as u8).to_ascii_lowercase();
                    n += 1;
                } else {
                    overflow = true;
                }
            } else {
                for l in c.to_lowercase() {
                    let mut tmp = [0u8; 4];
                    let s = l.encode_utf8(&mut tmp);
                    if n + s.len() <= buf.len() {
                        buf[n..n + s.len()].copy_from_slice(s.as_bytes());
                        n += s.len();
                    } else {
                        overflow = true;
                    }
                }
            }
            j += len;
            continue;
        }
        // An inner apostrophe or hyphen followed by a letter: O'Brien, Jean-Luc.
        if (c == '\'' || c == '’' || c == '-') && !first {
            let after = text[j + len..].chars().next();
            if after.is_some_and(is_letter) {
                if c == '-' {
                    hyphen = true;
                    lower_part |= after.is_some_and(char::is_lowercase);
                }
                if n < buf.len() {
                    buf[n] = if c == '-' { b'-' } else { b'\'' };
                    n += 1;
                } else {
                    overflow = true;
                }
                j += len;
                continue;
            }
        }
        break;
    }
    let next = j;
    let glued = b.get(j).is_some_and(|c| c.is_ascii_digit() || *c == b'_');
    // Possessive: "Jennifer's".
    let mut end = j;
    if n >= 3 && buf[n - 2] == b'\'' && buf[n - 1] == b's' {
        n -= 2;
        end -= if text[..j].ends_with("’s") {
            "’s".len()
        } else {
            2
        };
    }
    let cap = cap && (letters == 1 || !all_upper);
    let flags = if overflow || !cap || glued {
        0
    } else {
        let key = std::str::from_utf8(&buf[..n]).unwrap_or("");
        let mut f = lex.flags_folded(key);
        if hyphen && lower_part {
            // "Boucher-la-Forêt", "Vidal-sur-Lebrun": places.
            f = lexicon::STOP;
        } else if hyphen
            && key
                .rsplit('-')
                .next()
                .is_some_and(|p| lex.flags(p) & lexicon::SUFFIX != 0)
        {
            // "Jakob-Scheibe-Weg", "Mechthild-Zobel-Platz": streets.
            f = lexicon::STOP;
        } else if hyphen && f & (lexicon::FIRST | lexicon::LAST) == 0 {
            // "Fantoni-Malenchini", "Jean-Luc": judged by the parts, a first
            // name only when every part is one.
            let mut all_first = true;
            let mut any_last = false;
            let mut ambiguous = 0;
            for p in key.split('-') {
                let pf = lex.flags_folded(p);
                all_first &= pf & lexicon::FIRST != 0;
                any_last |= pf & lexicon::LAST != 0;
                ambiguous |= pf & (lexicon::AMBIGUOUS | lexicon::WORD);
            }
            if all_first {
                f |= lexicon::FIRST | ambiguous;
            }
            if any_last {
                f |= lexicon::LAST;
            }
        }
        f
    };
    Word {
        start: i,
        end,
        next,
        flags,
        cap,
        glued,
        after_particle: false,
    }
}

/// Whether the word at `start` opens a sentence, a line or a quotation.
fn sentence_start(b: &[u8], start: usize) -> bool {
    let mut k = start;
    while k > 0 && (b[k - 1] == b' ' || b[k - 1] == b'\t') {
        k -= 1;
    }
    k == 0
        || matches!(
            b[k - 1],
            b'.' | b'!' | b'?' | b'\n' | b'"' | b':' | b'>' | b'(' | b'*' | b'-' | b'\''
        )
        || (k >= 3 && &b[k - 3..k] == "“".as_bytes())
}

/// What comes before a word says whether a name follows.
#[derive(PartialEq, PartialOrd, Clone, Copy)]
enum Cue {
    None,
    Weak,
    Strong,
}

fn cue_before(b: &[u8], start: usize, lex: &Lexicon) -> Cue {
    // Strip line breaks and commas after sign-offs: "Sincerely,\nJane".
    let mut k = start;
    while k > 0 && matches!(b[k - 1], b' ' | b'\n' | b'\r' | b'\t') {
        k -= 1;
    }
    // Only when the word before ends some phrase is the list gone through.
    let mut e = k;
    while e > 0 && matches!(b[e - 1], b':' | b',' | b'?') {
        e -= 1;
    }
    let mut s0 = e;
    while s0 > 0
        && e - s0 < 16
        && (b[s0 - 1].is_ascii_alphabetic() || b[s0 - 1] == b'\'' || b[s0 - 1] >= 0x80)
    {
        s0 -= 1;
    }
    if s0 == e {
        return Cue::None;
    }
    let mut buf = [0u8; 16];
    let prev = &b[s0..e];
    if prev.len() > buf.len() {
        return Cue::None;
    }
    for (k, c) in prev.iter().enumerate() {
        buf[k] = c.to_ascii_lowercase();
    }
    match std::str::from_utf8(&buf[..prev.len()]) {
        Ok(w) if lex.flags(w) & lexicon::CUE != 0 => {}
        _ => return Cue::None,
    }
    let head = &b[..k];
    let ends = |s: &str| {
        head.len() >= s.len() && head[head.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
    };
    for s in cues::SIGN_OFFS {
        if ends(s) && (k < 1 + s.len() || !b[k - s.len() - 1].is_ascii_alphabetic()) {
            return Cue::Strong;
        }
    }
    let head = &b[..start];
    let ends = |s: &str| {
        head.len() >= s.len()
            && head[head.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            && (head.len() == s.len() || !head[head.len() - s.len() - 1].is_ascii_alphabetic())
    };
    if cues::STRONG_BEFORE.iter().any(|s| ends(s)) {
        return Cue::Strong;
    }
    if cues::WEAK_BEFORE.iter().any(|s| ends(s)) {
        return Cue::Weak;
    }
    Cue::None
}

/// Finds the person (if any) in the run of capitalised words starting at
/// `i` and returns where scanning goes on.
pub fn person_at(text: &str, i: usize, lex: &Lexicon, out: &mut Vec<Finding>) -> usize {
    let b = text.as_bytes();
    let w0 = read_word(text, i, lex);
    if !w0.cap || w0.glued {
        return w0.next.max(i + 1);
    }
    // Leading greetings and titles: "Dear Dr. Okonkwo".
    let mut words: [Word; 4] = [w0; 4];
    let mut n = 0;
    let mut titled = false;
    let mut greeted = false;
    let mut cur = w0;
    loop {
        let title_here = cur.has(lexicon::TITLE)
            && (b.get(cur.next) == Some(&b'.') || !cur.has(lexicon::FIRST | lexicon::LAST));
        if title_here {
            titled = true;
        } else if n == 0 && !titled && cur.has(lexicon::GREETING) {
            greeted = true;
        } else {
            words[n] = cur;
            n += 1;
        }
        if n == words.len() {
            break;
        }
        // The next capitalised word, after one space, a title's dot, an
        // initial ("John F. Kennedy") or particles ("Sanne van den Berg").
        let mut k = cur.next;
        if b.get(k) == Some(&b'.') && (title_here || cur.end - cur.start == 1) {
            k += 1;
        }
        if b.get(k) != Some(&b' ') {
            break;
        }
        k += 1;
        let mut particles = 0;
        let mut next = None;
        while let Some(c) = text[k..].chars().next() {
            if !c.is_alphabetic() {
                break;
            }
            let w = read_word(text, k, lex);
            if c.is_uppercase() {
                if !w.cap || w.glued {
                    break;
                }
                if n > 0
                    && w.next - w.start == 1
                    && b.get(w.next) == Some(&b'.')
                    && b.get(w.next + 1) == Some(&b' ')
                {
                    k = w.next + 2; // a middle initial
                    continue;
                }
                next = Some(Word {
                    after_particle: particles > 0,
                    ..w
                });
                break;
            }
            let lower = &text[w.start..w.next];
            if n == 0
                || particles == 2
                || lower.len() > 5
                || lex.flags(lower) & lexicon::PARTICLE == 0
                || b.get(w.next) != Some(&b' ')
            {
                break;
            }
            particles += 1;
            k = w.next + 1;
        }
        match next {
            Some(w) => cur = w,
            None => break,
        }
    }
    if n == 0 {
        return cur.next.max(i + 1);
    }
    // A trailing initial is no part of a name ("Ribas S.L.").
    while n > 1 && words[n - 1].end - words[n - 1].start == 1 {
        n -= 1;
    }
    let run = &words[..n];
    let resume = run[0].next.max(i + 1);
    let skip_all = run[n - 1].next;
    // Most capitalised words are a lone word no list knows (a German noun,
    // a product): a name only after an introducing phrase.
    if n == 1 && !titled && !greeted && !run[0].has(lexicon::FIRST | lexicon::LAST) {
        let w = run[0];
        if w.has(lexicon::WORD | lexicon::STOP | lexicon::AMBIGUOUS)
            || cue_before(b, w.start, lex) != Cue::Strong
        {
            return resume;
        }
    }
    if is_company_or_place(text, run, lex) {
        return skip_all;
    }

    let w = run[0];
    let first_then_surname = w.has(lexicon::FIRST) && n >= 2 && run[1].has(lexicon::LAST);
    if !w.nameish() && !first_then_surname {
        // "Please", "Product": not a name; the next word may start one.
        return resume;
    }
    // How many words the name has: up to three name-like words.
    let mut m = 1;
    while m < n && m < 3 && run[m].nameish() {
        m += 1;
    }
    let cue = if greeted {
        Cue::Strong
    } else {
        cue_before(b, w.start, lex)
    };
    let start_of_sentence = sentence_start(b, w.start);
    let speaker = start_of_sentence && b.get(run[m - 1].next) == Some(&b':') && m <= 2;
    let f = |w: &Word| w.has(lexicon::FIRST);
    let l = |w: &Word| w.has(lexicon::LAST);
    let word = |w: &Word| {
        w.has(lexicon::WORD | lexicon::STOP)
            || (w.has(lexicon::AMBIGUOUS) && !w.has(lexicon::FIRST))
    };
    let long = |w: &Word| w.end - w.start >= 3;
    let score: f32 = if titled {
        0.9
    } else if m >= 2 {
        let w1 = run[1];
        if w.clear_first() {
            if l(&w1) || f(&w1) { 0.9 } else { 0.75 }
        } else if !w.nameish() {
            // "April Martin", "May Johnson" after "Dear".
            if cue == Cue::Strong { 0.8 } else { 0.0 }
        } else if f(&w) {
            // "Will", "Grant", "Mike", "Wilson": a word or a surname as well
            // as a first name.
            if cue == Cue::Strong {
                0.8
            } else if !long(&w1) {
                0.0
            } else if !word(&w1) {
                0.7
            } else if l(&w1) {
                0.6
            } else {
                0.0
            }
        } else if cue == Cue::Strong {
            0.8
        } else if l(&w1) && !word(&w) && long(&w1) {
            if start_of_sentence { 0.55 } else { 0.6 }
        } else if cue == Cue::Weak && !word(&w) && !word(&w1) && long(&w) && long(&w1) {
            0.55
        } else {
            0.0
        }
    } else if cue == Cue::Strong && (f(&w) || l(&w) || !word(&w)) {
        0.8
    } else if w.clear_first() {
        if speaker || cue == Cue::Weak {
            0.7
        } else if !start_of_sentence {
            0.6
        } else {
            0.5
        }
    } else {
        0.0
    };
    if score <= 0.0 {
        return resume;
    }
    let end = run[m - 1].end;
    if end - w.start > 64 {
        return resume;
    }
    out.push(Finding {
        entity: Entity::Person,
        start: w.start,
        end,
        score,
    });
    run[m - 1].next
}

/// Lowercase words after a name that make it a street ("Tina branch",
/// "Thomas mission"), leaving out the ones that are ordinary words too.
fn street_after(text: &str, k: usize, lex: &Lexicon) -> bool {
    let b = text.as_bytes();
    if b.get(k) != Some(&b' ') || !b.get(k + 1).is_some_and(u8::is_ascii_lowercase) {
        return false;
    }
    let mut e = k + 1;
    while e < b.len() && b[e].is_ascii_lowercase() {
        e += 1;
    }
    let w = &text[k + 1..e];
    lex.flags(w) & (lexicon::SUFFIX | lexicon::STREET) != 0
        && !matches!(
            w,
            "run"
                | "walk"
                | "pass"
                | "way"
                | "close"
                | "common"
                | "key"
                | "view"
                | "fall"
                | "spring"
                | "light"
                | "land"
                | "camp"
                | "course"
                | "curve"
                | "plain"
                | "wall"
                | "union"
                | "center"
                | "club"
                | "green"
                | "as"
                | "co"
                | "group"
                | "partners"
                | "media"
                | "records"
                | "act"
                | "international"
                | "capital"
                | "school"
                | "college"
                | "bank"
                | "hotel"
                | "bar"
                | "cafe"
                | "band"
                | "state"
                | "city"
                | "town"
                | "prize"
                | "award"
                | "track"
                | "row"
                | "park"
        )
}

/// The flags of the word after one space at `k`, whatever its case ("KG",
/// "SA", "GmbH"), or after a conjunction ("et Fils", "and Sons").
fn next_word_flags(text: &str, k: usize, lex: &Lexicon) -> u16 {
    let b = text.as_bytes();
    let word_at = |k: usize, allow_lower: bool| -> Option<(usize, u16)> {
        if b.get(k) != Some(&b' ') {
            return None;
        }
        let mut e = k + 1;
        while e < b.len() && (b[e].is_ascii_alphabetic() || b[e] >= 0x80) && e - k < 16 {
            e += 1;
        }
        if e == k + 1 || !text.is_char_boundary(e) {
            return None;
        }
        let mut buf = [0u8; 24];
        let w = lowercase(&text[k + 1..e], &mut buf);
        let f = lex.flags(w);
        let conj = matches!(w, "et" | "e" | "y" | "and" | "und" | "en");
        let lower = b[k + 1].is_ascii_lowercase();
        Some((
            e,
            if conj {
                u16::MAX
            } else if lower && !allow_lower {
                0
            } else {
                f
            },
        ))
    };
    match word_at(k, false) {
        Some((e, u16::MAX)) => word_at(e, true).map_or(0, |(_, f)| {
            if f == u16::MAX {
                0
            } else {
                f & lexicon::SUFFIX
            }
        }),
        Some((_, f)) => f,
        None => 0,
    }
}

/// A lone surname in a list of surnames is a company: "Hampton, Vaughn and
/// Lewis", "Curatoli, Lombardi e Lupo"; a list of first names is not.
fn company_list(text: &str, run: &[Word], lex: &Lexicon) -> bool {
    if run.len() != 1 || run[0].clear_first() && !run[0].has(lexicon::LAST) {
        return false;
    }
    let b = text.as_bytes();
    let w = run[0];
    let surname_at = |k: usize| -> bool {
        let Some(c) = text[k..].chars().next() else {
            return false;
        };
        if !c.is_uppercase() {
            return false;
        }
        let n = read_word(text, k, lex);
        n.has(lexicon::LAST) && !n.clear_first()
    };
    // After: ", Banks and Turner" / " and Turner" / " e Lupo".
    let after = &b[w.next.min(b.len())..];
    for sep in [&b", "[..], b" and ", b" e ", b" y ", b" & "] {
        if after.starts_with(sep) && surname_at(w.next + sep.len()) {
            return w.has(lexicon::LAST) && !w.clear_first() || after.starts_with(b", ");
        }
    }
    // Before: "Hampton, Vaughn and " / "Curatoli, Lombardi e ".
    let before = &b[..w.start];
    for sep in [&b" and "[..], b" e ", b" y ", b", "] {
        if before.ends_with(sep) {
            let mut k = w.start - sep.len();
            while k > 0 && (b[k - 1].is_ascii_alphabetic() || b[k - 1] >= 0x80) {
                k -= 1;
            }
            if k < w.start - sep.len()
                && text.is_char_boundary(k)
                && surname_at(k)
                && k >= 2
                && &b[k - 2..k] == b", "
            {
                return true;
            }
        }
    }
    false
}

/// Whether the capitalised run is (part of) a company, an address or a place
/// rather than a person.
fn is_company_or_place(text: &str, run: &[Word], lex: &Lexicon) -> bool {
    let b = text.as_bytes();
    let n = run.len();
    let first = run[0];
    // "Lake Jennifer", "San Lorenzo", "Via Durante", "Hermanos Páez".
    if n >= 2 && (first.has(lexicon::PLACE) || first.has(lexicon::STREET)) && !first.clear_first() {
        return true;
    }
    // "Johnson LLC", "Jennifer Mountains"; but "Robert Lane" is a person.
    let numbered = {
        let mut k = first.start;
        while k > 0 && b[k - 1] == b' ' {
            k -= 1;
        }
        k < first.start && k > 0 && b[k - 1].is_ascii_digit()
    };
    if run[1..].iter().enumerate().any(|(k, w)| {
        let surname = w.after_particle
            || (w.has(lexicon::COMMON_LAST)
                && first.clear_first()
                && k + 2 == n
                && n <= 3
                && !numbered);
        (w.has(lexicon::SUFFIX) && !surname)
            || w.has(lexicon::STREET) && !w.has(lexicon::FIRST | lexicon::LAST)
    }) {
        return true;
    }
    let last = run[n - 1];
    // "Walter OHG", "Hamann Förster GbR", "Müller & Söhne", "Ribas S.L.",
    // "Thomas mission", "Kimberly Lock Apt".
    let after = &b[last.next.min(b.len())..];
    if after.first() == Some(&b'&')
        || after.starts_with(b" &")
        || (after.len() >= 4
            && after[0] == b' '
            && after[1].is_ascii_alphabetic()
            && after[2] == b'.'
            && after[3].is_ascii_alphabetic())
        || ((numbered || first.start == 0 || b[first.start - 1] == b'\n')
            && street_after(text, last.next, lex))
        || next_word_flags(text, last.next, lex) & lexicon::SUFFIX != 0
        || company_list(text, run, lex)
    {
        return true;
    }
    // What comes before: "the Princess Royal", "rue Victor Hugo", "calle de Paca Bernad".
    let mut k = first.start;
    let mut particles = 0;
    loop {
        while k > 0 && b[k - 1] == b' ' {
            k -= 1;
        }
        let e = k;
        while k > 0 && (b[k - 1].is_ascii_alphabetic() || b[k - 1] >= 0x80) {
            k -= 1;
        }
        if k == e || !text.is_char_boundary(k) {
            return false;
        }
        let prev = &text[k..e];
        if prev.len() > 24 {
            return false;
        }
        let mut buf = [0u8; 24];
        let lower = lowercase(prev, &mut buf);
        let f = lex.flags(lower);
        if lower == "the" {
            return true;
        }
        if f & lexicon::STREET != 0 {
            return true;
        }
        if f & lexicon::PARTICLE != 0
            && particles < 2
            && prev.bytes().all(|c| c.is_ascii_lowercase())
        {
            particles += 1;
            continue;
        }
        return false;
    }
}

fn lowercase<'a>(s: &str, buf: &'a mut [u8; 24]) -> &'a str {
    let mut n = 0;
    for c in s.chars() {
        for l in c.to_lowercase() {
            let mut tmp = [0u8; 4];
            let e = l.encode_utf8(&mut tmp);
            if n + e.len() > buf.len() {
                return "";
            }
            buf[n..n + e.len()].copy_from_slice(e.as_bytes());
            n += e.len();
        }
    }
    std::str::from_utf8(&buf[..n]).unwrap_or("")
}
