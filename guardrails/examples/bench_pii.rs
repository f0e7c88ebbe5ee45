//! PII detection speed: µs per KB of realistic text (1 KB samples of a
//! support e-mail, a chat prompt with code, server logs and a German/French
//! business letter), all seven entities on, one core.
//! Run: `cargo run --release -p sluice-guardrails --example bench_pii`
use std::time::Instant;

use sluice_guardrails::pii::{Detector, Entity};

const TEXTS: [(&str, &str); 4] = [
    (
        "support e-mail",
        "Hi team,\n\nI am writing about the invoice we received last week. Please call John Smith on +44 20 7946 0958 \
or mail jane.doe@example.com; the card 4111 1111 1111 1111 was charged twice on 2024-03-15 at 10:22. Order #100234567 \
shipped from our warehouse in Lake Jennifer, but the tracking page says it never left. My colleague Maria Gonzalez \
(maria.gonzalez@example.org, (415) 555-2671) already opened ticket 550e8400-e29b-41d4-a716-446655440000 and was told \
to wait. We would like the refund to go to IBAN GB82 WEST 1234 5698 7654 32 instead of the card. For tax purposes our \
accountant needs the SSN on file, which is 536-22-1234, and the billing address 742 Evergreen Terrace, Springfield. \
Thanks a lot for your help, and sorry for the long message.\n\nBest regards,\nDr. Emily Carter\nHead of Operations, \
Acme Widgets Ltd\nTel. +1-415-555-2671\n",
    ),
    (
        "chat prompt with code",
        "You are a helpful assistant. Summarise the following pull request for the release notes and list any risks. \
The change bumps the client library from version 2.14.3 to 2.15.0, replaces the retry loop in fetch_orders() with \
exponential backoff (base 250 ms, cap 30000 ms), and adds a metric requests_total{status=\"5xx\"}. Commit \
9fceb02d0ae598e95dc970b74767f19372d61af8 also fixes the flaky test test_parse_timestamp, which failed when the \
timestamp 2024-03-15T10:22:31.123Z crossed midnight in UTC. The config now reads MAX_CONNECTIONS=64 and \
TIMEOUT_SECONDS=15. Reviewers asked whether the new code handles an empty response body; the author says yes and \
points to the test case with payload {\"items\": [], \"next\": null}. Please keep the summary under 120 words, use \
bullet points, and do not mention internal ticket numbers such as PROJ-4821 or build 20240315.7. Also explain in \
one sentence why exponential backoff helps when the upstream API rate-limits us at 100 requests per second.\n",
    ),
    (
        "server logs",
        "2024-03-15 10:22:31.123 INFO  [worker-3] request_id=7c9e6679-7425-40de-944b-e07fc1f90ae7 method=GET path=/api/v2/orders/100234567 status=200 latency_ms=35 client=192.168.10.4\n\
2024-03-15 10:22:31.456 WARN  [worker-1] request_id=16fd2706-8baf-433b-82eb-8c7fada847da method=POST path=/api/v2/payments status=402 latency_ms=120 client=2001:db8::8a2e:370:7334\n\
2024-03-15 10:22:32.001 INFO  [worker-2] user=jane.doe@example.com login ok from 10.0.0.12 session=af3e9b1c\n\
2024-03-15 10:22:32.789 ERROR [worker-3] upstream 172.16.4.20:8443 timed out after 30000 ms (attempt 3/5)\n\
2024-03-15 10:22:33.010 INFO  [scheduler] job nightly-export finished in 00:12:45, 1048576 rows, exit code 0\n\
2024-03-15 10:22:33.500 DEBUG [worker-4] cache hit ratio 0.93, evictions 1234, heap 512 MB\n",
    ),
    (
        "German/French letter",
        "Sehr geehrte Frau Müller,\n\nvielen Dank für Ihre Nachricht vom 12.03.2024. Wie telefonisch besprochen, \
überweisen wir den Betrag von 1.250,00 EUR auf das Konto DE89 3704 0044 0532 0130 00 bei der Commerzbank. Für \
Rückfragen erreichen Sie Herrn Jürgen Schäfer unter 0049 30 1234567 oder per E-Mail an j.schaefer@beispiel.de.\n\n\
Chère Madame Dubois, nous vous remercions de votre commande n° 2024-000123. Votre conseiller, Jérôme Lefèvre, \
vous rappellera au 06 12 34 56 78 avant le 20 mars. Le virement doit être effectué sur le compte FR14 2004 1010 \
0505 0001 3M02 606.\n\nMit freundlichen Grüßen / Cordialement,\nAnnette Weber\nKundenservice, Beispiel GmbH, \
Hauptstraße 12, 10115 Berlin\n",
    ),
];

fn one_kb(s: &str) -> String {
    let mut text = String::new();
    while text.len() < 1024 {
        text.push_str(s);
    }
    let mut end = 1024;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

fn main() {
    let t = Instant::now();
    let d = Detector::new(&Entity::ALL, 0.5);
    println!(
        "Detector::new, first call (builds the word lists): {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let n = 20_000;
    let mut total = 0.0;
    for (name, base) in TEXTS {
        let text = one_kb(base);
        for _ in 0..500 {
            std::hint::black_box(d.find(&text));
        }
        let t = Instant::now();
        let mut found = 0;
        for _ in 0..n {
            found += std::hint::black_box(d.find(std::hint::black_box(&text))).len();
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / n as f64 * 1024.0 / text.len() as f64;
        total += us;
        println!("{name:<24} {us:6.2} µs per KB ({} findings)", found / n);
    }
    println!(
        "{:<24} {:6.2} µs per KB",
        "mean",
        total / TEXTS.len() as f64
    );
}
