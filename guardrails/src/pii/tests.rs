use super::*;

fn found(text: &str) -> Vec<(Entity, String)> {
    Detector::new(&Entity::ALL, 0.5)
        .find(text)
        .into_iter()
        .map(|f| (f.entity, text[f.start..f.end].to_string()))
        .collect()
}

fn one(text: &str, e: Entity, value: &str) {
    let f = found(text);
    assert!(
        f.contains(&(e, value.to_string())),
        "{text:?}: expected {e:?} {value:?}, found {f:?}"
    );
}

fn none(text: &str) {
    let f = found(text);
    assert!(f.is_empty(), "{text:?}: expected nothing, found {f:?}");
}

#[test]
fn emails() {
    one(
        "write to jane.doe+work@mail.example.co.uk today",
        Entity::EmailAddress,
        "jane.doe+work@mail.example.co.uk",
    );
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
    ] {
        one(&format!("call me at {p} tomorrow"), Entity::PhoneNumber, p);
    }
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
    none("card 4111 1111 1111 1112 is invalid");
}

#[test]
fn ibans_need_mod_97() {
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
    none("to DE89370400440532013001.");
}

#[test]
fn ssns_exclude_invalid_ranges() {
    one("my SSN is 536-22-1234", Entity::UsSsn, "536-22-1234");
    one("ssn: 536221234", Entity::UsSsn, "536221234");
    none("number 666-12-3456 and 900-12-3456 and 123-00-4567");
}

#[test]
fn ip_addresses() {
    one(
        "from 192.168.10.4 at noon",
        Entity::IpAddress,
        "192.168.10.4",
    );
    one(
        "host 2001:db8::8a2e:370:7334 down",
        Entity::IpAddress,
        "2001:db8::8a2e:370:7334",
    );
    none("upgrade to v1.2.3.4 now, and 999.1.1.1 is not an address");
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
    none("The Quick Brown fox met Will at the Monday meeting in March.");
}

#[test]
fn no_hits_on_timestamps_dates_shas_uuids_and_order_numbers() {
    none("at 2024-03-15T10:22:31Z the job 550e8400-e29b-41d4-a716-446655440000 finished");
    none("commit 9fceb02d0ae598e95dc970b74767f19372d61af8 on 15/03/2024 and 03.15.2024");
    none("order #100234567 and invoice 2024-000123 and ref 4111111111111112");
    none("timestamp 1700000000123 and epoch 1699999999");
}

#[test]
fn redaction_uses_typed_placeholders() {
    let text = "mail jane@example.com or call +1-415-555-2671";
    let d = Detector::new(&Entity::ALL, 0.5);
    assert_eq!(
        redact(text, &d.find(text)),
        "mail <EMAIL_ADDRESS> or call <PHONE_NUMBER>"
    );
}

#[test]
fn only_configured_entities_and_scores_are_reported() {
    let d = Detector::new(&[Entity::EmailAddress], 0.5);
    assert_eq!(d.find("jane@example.com +1-415-555-2671").len(), 1);
    let strict = Detector::new(&Entity::ALL, 0.99);
    assert!(strict.find("call 415-555-2671").is_empty());
}

#[test]
fn any_input_is_safe() {
    let d = Detector::new(&Entity::ALL, 0.0);
    for t in [
        "",
        "é",
        "💥💥 +",
        "-",
        "\u{0}\u{1}",
        &"9".repeat(10_000),
        "a-1-b-2 ((((1))))",
        "Mr. ",
        "x@y.",
    ] {
        let _ = d.find(t);
    }
}
