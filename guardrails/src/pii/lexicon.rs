//! Word lists for PERSON: one hash map from a lowercase word to flag bits,
//! built once from the lists compiled into the binary (`assets/pii/`) and
//! the small curated lists below.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::fx::Fx;
use std::sync::OnceLock;

/// A first name (US Census 1990, mimesis' Latin-script locales).
pub const FIRST: u16 = 1;
/// A surname (US Census 1990, mimesis).
pub const LAST: u16 = 1 << 1;
/// An ordinary English word (SCOWL size 35, lowercase entries).
pub const WORD: u16 = 1 << 2;
/// A title before a name: Mr, Dr, Frau ...
pub const TITLE: u16 = 1 << 3;
/// Never part of a name, whatever the lists say: months, days, greetings,
/// pronouns, product names that are also first names.
pub const STOP: u16 = 1 << 4;
/// Ends a company or an address, so the capitalised words before it are no
/// person: Inc, GmbH, Street, Avenue, Island ...
pub const SUFFIX: u16 = 1 << 5;
/// Starts a place name: North, Lake, Port, Saint ...
pub const PLACE: u16 = 1 << 6;
/// A greeting or sign-off after which a capitalised word is a name: Dear, Hi,
/// Thanks, Sincerely ...
pub const GREETING: u16 = 1 << 7;
/// A lowercase particle inside a name: van, de, von, da ...
pub const PARTICLE: u16 = 1 << 8;
/// A label after which (and a colon) a name follows: Name, From, Assignee ...
pub const LABEL: u16 = 1 << 9;
/// A street or company word that comes before names: rue, via, calle,
/// Stichting, Hermanos ... ("rue Victor Hugo" is an address).
pub const STREET: u16 = 1 << 10;
/// A first name that is far more often a surname (Johnson, Wilson, Harris:
/// a common Census surname and a rare Census first name).
pub const AMBIGUOUS: u16 = 1 << 11;
/// One of the 2,000 most frequent Census surnames ("Lane", "Hill", "Park"
/// are people more often than streets when a first name comes before).
pub const COMMON_LAST: u16 = 1 << 12;
/// The last word of an introducing phrase ("is" of "my name is").
pub const CUE: u16 = 1 << 13;

/// The words of a list file under `assets/pii/lexicon/`: one per line,
/// blank lines and `#` comments skipped.
fn words(text: &'static str) -> impl Iterator<Item = &'static str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
}

pub struct Lexicon {
    map: HashMap<&'static str, u16, BuildHasherDefault<Fx>>,
}

impl Lexicon {
    pub fn get() -> &'static Lexicon {
        static L: OnceLock<Lexicon> = OnceLock::new();
        L.get_or_init(Lexicon::build)
    }

    fn build() -> Lexicon {
        let mut map: HashMap<&'static str, u16, BuildHasherDefault<Fx>> = HashMap::default();
        map.reserve(140_000);
        let mut add = |words: &mut dyn Iterator<Item = &'static str>, flag: u16| {
            for w in words {
                *map.entry(w).or_insert(0) |= flag;
            }
        };
        add(
            &mut include_str!("../../assets/pii/first_names.txt").lines(),
            FIRST,
        );
        add(
            &mut include_str!("../../assets/pii/last_names.txt").lines(),
            LAST,
        );
        add(
            &mut include_str!("../../assets/pii/common_words.txt").lines(),
            WORD,
        );
        add(
            &mut words(include_str!("../../assets/pii/lexicon/titles.txt")),
            TITLE,
        );
        add(
            &mut words(include_str!("../../assets/pii/lexicon/stops.txt")),
            STOP,
        );
        add(
            &mut words(include_str!("../../assets/pii/lexicon/suffixes.txt")),
            SUFFIX,
        );
        add(
            &mut words(include_str!("../../assets/pii/lexicon/places.txt")),
            PLACE,
        );
        add(
            &mut words(include_str!("../../assets/pii/lexicon/greetings.txt")),
            GREETING,
        );
        add(
            &mut words(include_str!("../../assets/pii/lexicon/particles.txt")),
            PARTICLE,
        );
        add(
            &mut words(include_str!("../../assets/pii/lexicon/labels.txt")),
            LABEL,
        );
        add(
            &mut words(include_str!("../../assets/pii/lexicon/streets.txt")),
            STREET,
        );
        add(
            &mut words(include_str!("../../assets/pii/lexicon/ambiguous_words.txt")),
            AMBIGUOUS,
        );
        for w in words(include_str!("../../assets/pii/lexicon/names_first.txt")) {
            if let Some(f) = map.get_mut(w) {
                *f &= !WORD;
            }
        }
        for phrase in super::cues::cue_phrases() {
            let last = phrase
                .trim_end_matches([' ', ':', ',', '?', '\n'])
                .rsplit(' ')
                .next()
                .unwrap_or("");
            if !last.is_empty() && !map.contains_key(last) {
                map.insert(last, 0);
            }
            if let Some(f) = map.get_mut(last) {
                *f |= CUE;
            }
        }
        // Census first names that are far more often surnames: the first
        // names file lists the Census names by popularity first, the
        // surnames file the Census surnames by frequency first.
        let popular: HashMap<&str, usize, BuildHasherDefault<Fx>> =
            include_str!("../../assets/pii/first_names.txt")
                .lines()
                .take(500)
                .enumerate()
                .map(|(k, w)| (w, k))
                .collect();
        for (k, w) in include_str!("../../assets/pii/last_names.txt")
            .lines()
            .take(2000)
            .enumerate()
        {
            if let Some(f) = map.get_mut(w) {
                *f |= COMMON_LAST;
            }
            if k < 1500
                && !popular.contains_key(w)
                && let Some(f) = map.get_mut(w)
                && *f & FIRST != 0
            {
                *f |= AMBIGUOUS;
            }
        }
        Lexicon { map }
    }

    /// The flags of a lowercase word (0 when unknown).
    #[inline]
    pub fn flags(&self, lower: &str) -> u16 {
        self.map.get(lower).copied().unwrap_or(0)
    }

    /// The flags of a lowercase word, trying it without accents too
    /// ("eleonore" for "éléonore").
    pub fn flags_folded(&self, lower: &str) -> u16 {
        let f = self.flags(lower);
        if f != 0 || lower.is_ascii() {
            return f;
        }
        let mut buf = [0u8; 64];
        let mut n = 0;
        for c in lower.chars() {
            let s = fold(c);
            if n + s.len() > buf.len() {
                return 0;
            }
            buf[n..n + s.len()].copy_from_slice(s.as_bytes());
            n += s.len();
        }
        std::str::from_utf8(&buf[..n]).map_or(0, |k| self.flags(k))
    }
}

/// A Latin letter without its accent (lowercase), or the letter itself.
fn fold(c: char) -> &'static str {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'ç' | 'ć' | 'č' | 'ĉ' | 'ċ' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'ķ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' | 'ș' => "s",
        'ţ' | 'ť' | 'ț' => "t",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        'þ' => "th",
        '\'' => "'",
        '-' => "-",
        _ if c.is_ascii() => ascii(c),
        _ => "\u{0}",
    }
}

fn ascii(c: char) -> &'static str {
    const A: &str = "abcdefghijklmnopqrstuvwxyz";
    let k = (c as u8).wrapping_sub(b'a') as usize;
    if k < 26 { &A[k..k + 1] } else { "\u{0}" }
}
