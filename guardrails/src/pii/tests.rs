use super::*;

fn found(text: &str) -> Vec<(Entity, String)> {
    Detector::new(&Entity::ALL, 0.5)
        .find(text)
        .into_iter()
        .map(|f| (f.entity, text[f.start..f.end].to_string()))
        .collect()
}

#[track_caller]
fn one(text: &str, e: Entity, value: &str) {
    let f = found(text);
    assert!(
        f.contains(&(e, value.to_string())),
        "{text:?}: expected {e:?} {value:?}, found {f:?}"
    );
}

#[track_caller]
fn none(text: &str) {
    let f = found(text);
    assert!(f.is_empty(), "{text:?}: expected nothing, found {f:?}");
}

#[track_caller]
fn no(text: &str, e: Entity) {
    let f = found(text);
    assert!(
        f.iter().all(|(x, _)| *x != e),
        "{text:?}: expected no {e:?}, found {f:?}"
    );
}

#[test]
fn entity_names_round_trip() {
    for e in Entity::ALL {
        assert_eq!(Entity::from_name(e.name()), Some(e));
    }
    assert_eq!(Entity::from_name("PERSON"), Some(Entity::Person));
    assert_eq!(Entity::from_name("US_SSN"), Some(Entity::UsSsn));
    assert_eq!(Entity::from_name("person"), None);
}

#[test]
fn emails() {
    one(
        "write to jane.doe+work@mail.example.co.uk today",
        Entity::EmailAddress,
        "jane.doe+work@mail.example.co.uk",
    );
    one(
        "From: Jane <j_doe99@example.org>",
        Entity::EmailAddress,
        "j_doe99@example.org",
    );
    one(
        "mail 12345@example.com.",
        Entity::EmailAddress,
        "12345@example.com",
    );
    none("user@localhost and @handle and a@b.c");
}

#[test]
fn phones_in_international_formats() {
    for p in [
        "+44 20 7946 0958",
        "(415) 555-2671",
        "+1-415-555-2671",
        "0049 30 1234567",
        "06 12 34 56 78",
        "+33 6 12 34 56 78",
        "415.555.2671",
        "+49 (0) 9141 777631",
        "+44(0)115 4960914",
        "206.269.0743x9150",
        "+1-780-563-6083x7783",
        "(0161) 4960066",
        "555-2671",
    ] {
        one(&format!("call me at {p} tomorrow"), Entity::PhoneNumber, p);
    }
    one(
        "Please add Guillaume (0049 30 7049150) as an emergency contact.",
        Entity::PhoneNumber,
        "(0049 30 7049150",
    );
    one(
        "Please add Guillaume Lebrun (0049 30 7049150) as an emergency contact.",
        Entity::PhoneNumber,
        "(0049 30 7049150",
    );
    one(
        "Grenada 86021\n+33 4 90 93 44 90-Office,+1-271-592-0017-Fax",
        Entity::PhoneNumber,
        "+1-271-592-0017",
    );
    one("Mobile: 3420837783", Entity::PhoneNumber, "3420837783");
    one("their number: 555 0100", Entity::PhoneNumber, "555 0100");
}

#[test]
fn cards_need_luhn_and_a_network_prefix() {
    one(
        "card 4111 1111 1111 1111 exp 12/27",
        Entity::CreditCard,
        "4111 1111 1111 1111",
    );
    one(
        "pay with 5500-0000-0000-0004",
        Entity::CreditCard,
        "5500-0000-0000-0004",
    );
    one(
        "amex 378282246310005",
        Entity::CreditCard,
        "378282246310005",
    );
    one(
        "amex 3782 822463 10005",
        Entity::CreditCard,
        "3782 822463 10005",
    );
    one("visa 4222222222222", Entity::CreditCard, "4222222222222");
    one(
        "two cards: 4111111111111111 5500000000000004",
        Entity::CreditCard,
        "5500000000000004",
    );
    one(
        "Please refund 4111111111111111 (the card ending in 1111).",
        Entity::CreditCard,
        "4111111111111111",
    );
    none("card 4111 1111 1111 1112 is invalid");
    none("The card number 4111 1111 1111 1112 failed validation.");
    // Luhn-valid, but an order number.
    none("order #4111111111111111 shipped");
    // Luhn-valid, but no network starts with 9.
    none("ref 9111111111111111");
}

#[test]
fn ibans_need_mod_97_and_the_country_length() {
    one(
        "IBAN GB82 WEST 1234 5698 7654 32 please",
        Entity::Iban,
        "GB82 WEST 1234 5698 7654 32",
    );
    one(
        "to DE89370400440532013000.",
        Entity::Iban,
        "DE89370400440532013000",
    );
    one(
        "FR14 2004 1010 0505 0001 3M02 606",
        Entity::Iban,
        "FR14 2004 1010 0505 0001 3M02 606",
    );
    one("NL91ABNA0417164300", Entity::Iban, "NL91ABNA0417164300");
    none("to DE89370400440532013001.");
    // Right checksum, wrong length for Germany.
    none("DE8937040044053201300");
}

#[test]
fn ssns_exclude_invalid_ranges() {
    one("my SSN is 536-22-1234", Entity::UsSsn, "536-22-1234");
    one("ssn: 536221234", Entity::UsSsn, "536221234");
    one("employee 536-22-1234 started", Entity::UsSsn, "536-22-1234");
    none("number 666-12-3456 and 900-12-3456 and 123-00-4567 and 123-45-0000 and 000-12-3456");
    // Nine bare digits are an SSN only with a cue.
    no("order 536221234", Entity::UsSsn);
    // Mixed separators are not an SSN.
    no("ssn 536-22 1234", Entity::UsSsn);
}

#[test]
fn ip_addresses() {
    one(
        "from 192.168.10.4 at noon",
        Entity::IpAddress,
        "192.168.10.4",
    );
    one("block 10.0.0.0/8 now", Entity::IpAddress, "10.0.0.0");
    one(
        "host 2001:db8::8a2e:370:7334 down",
        Entity::IpAddress,
        "2001:db8::8a2e:370:7334",
    );
    one("ping fe80::1 and ::1.", Entity::IpAddress, "fe80::1");
    one(
        "addr 2001:0db8:85a3:0000:0000:8a2e:0370:7334, ok",
        Entity::IpAddress,
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    );
    one(
        "method=GET status=200 client=192.168.10.4",
        Entity::IpAddress,
        "192.168.10.4",
    );
    one(
        "upstream 172.16.4.20:8443 timed out",
        Entity::IpAddress,
        "172.16.4.20",
    );
    none("upgrade to v1.2.3.4 now, and 999.1.1.1 is not an address");
    none("Python 3.11.4.2 is installed; at 10:22:31 the MAC 00:1a:2b:3c:4d:5e; std::vector");
}

#[test]
fn persons_from_name_lists_and_context() {
    one(
        "Please forward this to John Smith in accounting.",
        Entity::Person,
        "John Smith",
    );
    one(
        "Hello, my name is Maria and I need help",
        Entity::Person,
        "Maria",
    );
    one("Signed, Dr. Okonkwo", Entity::Person, "Okonkwo");
    one(
        "Beneficiary: Kordula Krause",
        Entity::Person,
        "Kordula Krause",
    );
    one(
        "Met with Jérôme Grondin-Labbé today",
        Entity::Person,
        "Jérôme Grondin-Labbé",
    );
    one(
        "Sincerely,\nEléonore Dubois",
        Entity::Person,
        "Eléonore Dubois",
    );
    one(
        "Ask Sanne van den Berg about it",
        Entity::Person,
        "Sanne van den Berg",
    );
    one("Dear Mr. Whitfield, thanks", Entity::Person, "Whitfield");
    one(
        "I spoke with Mike Duivenvoorden",
        Entity::Person,
        "Mike Duivenvoorden",
    );
    one("Jennifer's laptop is broken", Entity::Person, "Jennifer");
    none("The Quick Brown fox met Will at the Monday meeting in March.");
    none("Ask Claude to summarise the Product Manager notes for Google Cloud.");
}

#[test]
fn companies_streets_and_places_are_not_persons() {
    no("I work for Johnson LLC in Lake Jennifer.", Entity::Person);
    no("Meet me at 883 Michelle Green", Entity::Person);
    no(
        "Our office is on Janette-Briemer-Straße 36.",
        Entity::Person,
    );
    no("The restaurant is at 3 rue Victor Hugo", Entity::Person);
    no("I work for Parry, Wilson and Johnson", Entity::Person);
    no("Hornich Römer KG sent the invoice.", Entity::Person);
    no("The Princess Royal arrived this morning.", Entity::Person);
}

#[test]
fn no_hits_on_timestamps_dates_shas_uuids_and_order_numbers() {
    none("at 2024-03-15T10:22:31Z the job 550e8400-e29b-41d4-a716-446655440000 finished");
    none("commit 9fceb02d0ae598e95dc970b74767f19372d61af8 on 15/03/2024 and 03.15.2024");
    none("order #100234567 and invoice 2024-000123 and ref 4111111111111112");
    none("timestamp 1700000000123 and epoch 1699999999");
    none("Version 2.14.3 was released on 2021-04-12 at 10:22:31.");
    none("Run #12345678 took 00:12:45 and used 2048 MB; seed 1234567.");
    none("Tracking number 123456789123456789 is out for delivery.");
    none("Price went from 1,299.00 to 1,149.99; pi is 3.14159.");
    none(
        "ORD-2024-000123 and sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    );
    none("GET /api/v2/orders/100234567 HTTP/1.1 and https://example.com/u/4155552671");
    none("Invoice no. 497320407, total 4,312.50 EUR.");
    none("votre commande n° 2024-000123 et la facture 2023/4471; user_id=4155552671");
}

#[test]
fn redaction_uses_typed_placeholders() {
    let text = "mail jane@example.com or call +1-415-555-2671, John Smith";
    let d = Detector::new(&Entity::ALL, 0.5);
    assert_eq!(
        redact(text, &d.find(text)),
        "mail <EMAIL_ADDRESS> or call <PHONE_NUMBER>, <PERSON>"
    );
    // Overlapping or out-of-range findings are skipped, never a panic.
    let bad = [
        Finding {
            entity: Entity::Person,
            start: 0,
            end: 4,
            score: 1.0,
        },
        Finding {
            entity: Entity::Person,
            start: 2,
            end: 6,
            score: 1.0,
        },
        Finding {
            entity: Entity::Person,
            start: 50,
            end: 90,
            score: 1.0,
        },
    ];
    assert_eq!(redact("abcdefgh", &bad), "<PERSON>efgh");
    assert_eq!(
        redact(
            "é",
            &[Finding {
                entity: Entity::Iban,
                start: 0,
                end: 1,
                score: 1.0
            }]
        ),
        "é"
    );
}

#[test]
fn only_configured_entities_and_scores_are_reported() {
    let d = Detector::new(&[Entity::EmailAddress], 0.5);
    assert_eq!(
        d.find("jane@example.com +1-415-555-2671 John Smith").len(),
        1
    );
    let strict = Detector::new(&Entity::ALL, 0.99);
    assert!(strict.find("call 415-555-2671").is_empty());
    let none = Detector::new(&[], 0.0);
    assert!(
        none.find("jane@example.com John Smith 4111 1111 1111 1111")
            .is_empty()
    );
}

#[test]
fn findings_are_sorted_disjoint_and_on_char_boundaries() {
    let d = Detector::new(&Entity::ALL, 0.0);
    let text = "Émile Zola (émile@exämple.fr) — call +33 6 12 34 56 78 or 06 12 34 56 78; IBAN FR14 2004 1010 0505 0001 3M02 606 🎉 John Smith 4111-1111-1111-1111";
    let f = d.find(text);
    assert!(f.len() >= 5, "{f:?}");
    for w in f.windows(2) {
        assert!(w[0].end <= w[1].start, "{f:?}");
    }
    for x in &f {
        assert!(text.is_char_boundary(x.start) && text.is_char_boundary(x.end));
        assert!((0.0..=1.0).contains(&x.score));
        assert!(text[x.start..x.end].chars().count() <= Detector::max_entity_len());
    }
}

#[test]
fn any_input_is_safe() {
    let d = Detector::new(&Entity::ALL, 0.0);
    let mut inputs: Vec<String> = [
        "",
        "é",
        "💥💥 +",
        "-",
        "\u{0}\u{1}",
        "a-1-b-2 ((((1))))",
        "Mr. ",
        "x@y.",
        "@@@...",
        "::",
        ":::::::::",
        "+(",
        "(+1",
        "GB82",
        "GB82 ",
        "DE89 3704 0044 0532 0130 0",
        "Dear ",
        "Ö",
        "John-",
        "O'",
        "1x",
        "1 ext",
        "1 ext.",
        "5 x",
        "St. ",
        "rue ",
        "Smith, ",
        "Á, B and ",
        "ß".repeat(100).as_str(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    inputs.push("9".repeat(10_000));
    inputs.push("9 ".repeat(5_000));
    inputs.push("John ".repeat(2_000));
    inputs.push("Ä".repeat(3_000));
    inputs.push("a@".repeat(3_000));
    inputs.push("1.".repeat(3_000));
    inputs.push("ab:".repeat(3_000));
    inputs.push("(1)".repeat(3_000));
    // Every char boundary of a mixed text, as a prefix and a suffix.
    let mixed = "Dr. Émile Zoë O'Brien-Smith, +44 (0)20 7946-0958 x12, émile@exämple.fr, 2001:db8::1, GB82 WEST 1234 5698 7654 32 — ok";
    for (k, _) in mixed.char_indices() {
        inputs.push(mixed[..k].to_string());
        inputs.push(mixed[k..].to_string());
    }
    for t in &inputs {
        for f in d.find(t) {
            assert!(f.start < f.end && f.end <= t.len(), "{t:?}: {f:?}");
            assert!(t.is_char_boundary(f.start) && t.is_char_boundary(f.end));
        }
    }
}

#[test]
fn random_inputs_never_panic() {
    // A seeded generator over pieces that reach every branch.
    const PIECES: &[&str] = &[
        " ",
        "\n",
        "a",
        "Z",
        "é",
        "É",
        "ß",
        "’",
        "'",
        "-",
        ".",
        ",",
        ":",
        "::",
        "@",
        "+",
        "(",
        ")",
        "/",
        "#",
        "x",
        "ext.",
        "0",
        "1",
        "4",
        "9",
        "00",
        "12",
        "123",
        "4111",
        "GB82",
        "DE89",
        "Mr.",
        "Dr ",
        "Dear ",
        "John",
        "Smith",
        "van",
        "de",
        "Lake",
        "Street",
        "LLC",
        "rue",
        "the ",
        "my name is ",
        "call ",
        "card ",
        "ssn ",
        "iban ",
        "order #",
        "v",
        "fe80",
        "db8",
        "2001",
        "💥",
        "\u{0}",
        "\u{200b}",
        "Ö",
        "ö",
        "İ",
        "ﬁ",
        "Σ",
        "ǅ",
    ];
    let d = Detector::new(&Entity::ALL, 0.0);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3000 {
        let mut t = String::new();
        let len = (state >> 59) as usize + 1;
        for _ in 0..len * 4 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            t.push_str(PIECES[(state >> 33) as usize % PIECES.len()]);
        }
        let f = d.find(&t);
        for x in &f {
            assert!(
                x.start < x.end
                    && x.end <= t.len()
                    && t.is_char_boundary(x.start)
                    && t.is_char_boundary(x.end),
                "{t:?}: {x:?}"
            );
        }
        for w in f.windows(2) {
            assert!(w[0].end <= w[1].start, "{t:?}: {f:?}");
        }
        let _ = redact(&t, &f);
    }
}

/// Numbers written one after another with single spaces read as one run of
/// digit groups; each number in it is still found.
#[test]
fn numbers_separated_by_single_spaces_are_each_found() {
    let cards = |text: &str| -> Vec<String> {
        found(text)
            .into_iter()
            .filter(|(e, _)| *e == Entity::CreditCard)
            .map(|(_, v)| v)
            .collect()
    };
    assert_eq!(
        cards("cards 4111 1111 1111 1111 5500 0000 0000 0004 on file"),
        ["4111 1111 1111 1111", "5500 0000 0000 0004"]
    );
    assert_eq!(
        cards("4111 1111 1111 1111 4111 1111 1111 1111"),
        ["4111 1111 1111 1111", "4111 1111 1111 1111"]
    );
    let all = found("+44 20 7946 0958 4111 1111 1111 1111");
    assert!(
        all.contains(&(Entity::PhoneNumber, "+44 20 7946 0958".into()))
            && all.contains(&(Entity::CreditCard, "4111 1111 1111 1111".into())),
        "{all:?}"
    );
    // Four-digit groups that fail as cards are still not read as several
    // shorter numbers.
    none("order 1234 5678 9012 3456 7890 1234 5678 9012");
}
