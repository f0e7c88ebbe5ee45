//! Context words near a candidate: "call me", "ssn", "card", "order #".

/// Before a phone number.
pub const PHONE_CUES: &[&str] = &[
    "phone",
    "call",
    "tel",
    "mobile",
    "cell",
    "whatsapp",
    "fax",
    "reach",
    "text",
    "ping",
    "sms",
    "contact",
    "dial",
    "voicemail",
    "ring",
    "office",
    "desk",
    "messages to",
    "answering",
    "sent to",
    "handy",
    "telefon",
    "téléphone",
    "portable",
    "móvil",
    "cellulare",
    "tlf",
];
/// "Number" says phone unless a card, an account or an id is meant.
pub const NUMBER_CUES: &[&str] = &["number", "nummer", "numéro", "no.", "nr.", "num:", "#:"];
/// After a phone number: "555-0100 (mobile)", "-Office".
pub const PHONE_AFTER_CUES: &[&str] = &["office", "fax", "mobile", "cell", "home", "work", "desk"];
pub const CARD_CUES: &[&str] = &[
    "card",
    "visa",
    "mastercard",
    "amex",
    "credit",
    "debit",
    "payment",
    "cc ",
    "cc#",
    "paid",
    "pay ",
    "charge",
    "karte",
    "carte",
    "tarjeta",
    "carta",
];
/// Before a dotted quad that is a version, not an address.
pub const VERSION_CUES: &[&str] = &[
    "version",
    "ver ",
    "ver.",
    "release",
    "build",
    "v ",
    "python",
    "node",
    "java",
    "ruby",
    "php",
    "perl",
    "golang",
    "rust",
    "gcc",
    "clang",
    "kernel",
    "firmware",
    "chrome",
    "firefox",
    "android",
    "ios ",
    "windows",
    "macos",
    "ubuntu",
    "debian",
    "upgrade",
    "downgrade",
    "patch",
    "sdk",
    "npm",
    "pip ",
    "package",
    "library",
    "installed",
];
pub const SSN_CUES: &[&str] = &[
    "ssn",
    "social security",
    "social sec",
    "tax id",
    "taxpayer",
    "tin ",
];
/// Ids, not phone numbers or cards (unless a cue of their own says so).
pub const ID_CUES: &[&str] = &[
    "order",
    "invoice",
    "ticket",
    "ref ",
    "ref:",
    "ref.",
    "ref#",
    "ref-",
    "reference",
    "id ",
    "id:",
    "id=",
    "id#",
    "uuid",
    "#",
    "tracking",
    "serial",
    "version",
    "build",
    "run ",
    "seed",
    "port",
    "pid",
    "sku",
    "isbn",
    "batch",
    "case ",
    "po ",
    "job",
    "n°",
    "nº",
    "commande",
    "bestellung",
    "pedido",
    "ordine",
    "rechnung",
    "facture",
    "factura",
    "fattura",
    "auftrag",
    "referenz",
    "kunden-nr",
    "kundennummer",
];

/// Categories of context words, as bits.
pub const PHONE: u16 = 1;
pub const NUMBER: u16 = 1 << 1;
pub const CARD: u16 = 1 << 2;
pub const ID: u16 = 1 << 3;
pub const VERSION: u16 = 1 << 4;
pub const SSN: u16 = 1 << 5;
pub const ACCOUNT: u16 = 1 << 6;
pub const AT: u16 = 1 << 7;

const ACCOUNT_CUES: &[&str] = &["iban", "account", "acct", "routing", "sort code", "bic"];

/// How far before a number its context words are looked for.
pub const BEFORE: usize = 40;

struct Cues {
    ac: aho_corasick::AhoCorasick,
    bits: Vec<u16>,
}

fn cues() -> &'static Cues {
    static C: std::sync::OnceLock<Cues> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        let mut patterns = Vec::new();
        let mut bits = Vec::new();
        for (list, bit) in [
            (PHONE_CUES, PHONE),
            (NUMBER_CUES, NUMBER),
            (CARD_CUES, CARD),
            (ID_CUES, ID),
            (VERSION_CUES, VERSION),
            (SSN_CUES, SSN),
            (ACCOUNT_CUES, ACCOUNT),
            (&["@"][..], AT),
        ] {
            for p in list {
                patterns.push(*p);
                bits.push(bit);
            }
        }
        let ac = aho_corasick::AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(&patterns)
            .expect("cue automaton");
        Cues { ac, bits }
    })
}

/// Builds the context-word automaton now rather than on the first request.
pub fn warm() {
    cues();
}

/// The categories of the context words that start a word in the
/// [`BEFORE`] bytes before `pos`: one pass over them.
pub fn before(b: &[u8], pos: usize) -> u16 {
    let pos = pos.min(b.len());
    let from = pos.saturating_sub(BEFORE);
    let w = &b[from..pos];
    // The window may start inside a word ("Marcella" holds no "cell").
    let word_before = from > 0 && b[from - 1].is_ascii_alphabetic();
    let c = cues();
    let mut found = 0;
    for m in c.ac.find_overlapping_iter(w) {
        let p = m.start();
        let prev_letter = if p == 0 {
            word_before
        } else {
            w[p - 1].is_ascii_alphabetic()
        };
        if !w[p].is_ascii_alphabetic() || !prev_letter {
            found |= c.bits[m.pattern().as_usize()];
        }
    }
    found
}

/// Whether the `n` bytes from `pos` on contain one of `cues`.
#[inline]
pub fn after_has(b: &[u8], pos: usize, n: usize, cues: &[&str]) -> bool {
    let pos = pos.min(b.len());
    window_has(&b[pos..(pos + n).min(b.len())], cues)
}

fn window_has(w: &[u8], cues: &[&str]) -> bool {
    let mut buf = [0u8; 64];
    let w = &w[..w.len().min(64)];
    for (k, c) in w.iter().enumerate() {
        buf[k] = c.to_ascii_lowercase();
    }
    let w = &buf[..w.len()];
    // A cue starts a word: "paid" holds no "id", "Lebrun" no "run".
    for p in 0..w.len() {
        let c0 = w[p];
        if p > 0 && c0.is_ascii_alphabetic() && w[p - 1].is_ascii_alphabetic() {
            continue;
        }
        let rest = &w[p..];
        for c in cues {
            let c = c.as_bytes();
            if c[0] == c0 && rest.len() >= c.len() && &rest[..c.len()] == c {
                return true;
            }
        }
    }
    false
}
