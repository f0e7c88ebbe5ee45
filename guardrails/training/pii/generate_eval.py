"""Generates the labelled PII evaluation sets (JSONL: text + gold spans).

Two splits with DISJOINT templates and different seeds:

- `eval-tune.jsonl`    (seed 101): the rules and lists were tuned looking at its misses.
- `eval-heldout.jsonl` (seed 202): never looked at while tuning; README.md reports it.

Templates come from two sources, each split in half by index (even -> tune,
odd -> held out):

- the 209 templates of Microsoft's presidio-evaluator 0.3.2 (MIT), read from
  the wheel that `pip download` fetches (its own generator is not used: it
  pulls spaCy, transformers and presidio-analyzer);
- the templates below (gateway-style prompts, logs and hard negatives),
  written for this set.

Fake identities come from Faker 33.1.0 (MIT) in seven locales, one locale per
sample; SSNs are en_US. Placeholders that are not one of the seven entities
(cities, companies, addresses, dates, SHAs, UUIDs, order numbers,
Luhn-failing card numbers, versions ...) are filled but not labelled: they are
the negatives.

Run (one command, from the repository root):
  python3 -m venv /tmp/pii-venv && /tmp/pii-venv/bin/pip install faker==33.1.0 && \
  /tmp/pii-venv/bin/python guardrails/training/pii/generate_eval.py
"""
import datetime
import json
import os
import pathlib
import random
import re
import subprocess
import sys
import tempfile
import zipfile

from faker import Faker

HERE = pathlib.Path(__file__).resolve().parent
LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL"]
ENTITIES = {"PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS"}

# Gateway-style templates: prompts, support tickets, logs, e-mail headers.
OWN = [
    "Hi, my name is {PERSON} and my email is {EMAIL_ADDRESS}.",
    "Please call {PERSON} on {PHONE_NUMBER} before Friday.",
    "Charge it to card {CREDIT_CARD}, the billing contact is {PERSON}.",
    "Wire the refund to IBAN {IBAN} (account holder {PERSON}).",
    "Employee {PERSON}, SSN {US_SSN}, started on {DATE}.",
    "Suspicious login from {IP_ADDRESS} for user {EMAIL_ADDRESS}.",
    "Dear {PERSON}, your order #{ORDER} has shipped.",
    "You can reach me at {PHONE_NUMBER} or {EMAIL_ADDRESS}.",
    "My social security number is {US_SSN} and my phone is {PHONE_NUMBER}.",
    "Payment failed for card number {CREDIT_CARD} at {TIME}.",
    "Forward the contract to {PERSON} ({EMAIL_ADDRESS}) and cc {PERSON}.",
    "The server {IP_ADDRESS} rejected commit {SHA}.",
    "Transfer 250 EUR to {IBAN} by {DATE}, reference {UUID}.",
    "Meeting notes: {PERSON} will follow up with {PERSON} next week.",
    "Contact number: {PHONE_NUMBER}",
    "ssn {US_SSN}",
    "Please update my card to {CREDIT_CARD}, thanks, {PERSON}",
    "Log line {DATE} {TIME} request from {IP_ADDRESS} took 35 ms",
    "Sincerely, {PERSON}",
    "I spoke with {PERSON} yesterday about invoice {ORDER}.",
    "Send the documents to {EMAIL_ADDRESS} and text {PHONE_NUMBER} when done.",
    "Account {IBAN} belongs to {PERSON}.",
    "New hire paperwork: name {PERSON}, SSN {US_SSN}, email {EMAIL_ADDRESS}.",
    "Build {SHA} deployed at {TIMESTAMP} on host {IP_ADDRESS}.",
    "Ask for {PERSON} at the front desk, or call {PHONE_NUMBER}.",
    "Card ending ... full number {CREDIT_CARD}, holder {PERSON}.",
    "The IBAN on file is {IBAN}; please confirm with {PERSON}.",
    "Ping me on {PHONE_NUMBER} if {IP_ADDRESS} goes down again.",
    "From: {PERSON} <{EMAIL_ADDRESS}>",
    "Ticket {UUID} opened by {PERSON} on {DATE}.",
    "Her SSN is {US_SSN}.",
    "Thanks {PERSON}! I've added {EMAIL_ADDRESS} to the list.",
    "Firewall blocked {IP_ADDRESS} twice; {PERSON} is looking into it.",
    "Traffic spike from {IP_ADDRESS} and {IP_ADDRESS} around {TIME}.",
    "Call {PHONE_NUMBER} to confirm the card {CREDIT_CARD}.",
    "{PERSON} asked me to send you their number: {PHONE_NUMBER}.",
    "Patient {PERSON} can be reached on {PHONE_NUMBER}, IBAN {IBAN}.",
    "Whitelist {IP_ADDRESS} for the partner, contact {EMAIL_ADDRESS}.",
    "Met with {PERSON} and {PERSON} to review the SSN {US_SSN} mismatch.",
    "Your verification code was sent to {PHONE_NUMBER}.",
    "Per our call, {PERSON} will send the signed form from {EMAIL_ADDRESS}.",
    "Reminder: {PERSON}'s mobile is {PHONE_NUMBER}, office {PHONE_NUMBER}.",
    "Refund card {CREDIT_CARD} and notify {EMAIL_ADDRESS}.",
    "Beneficiary: {PERSON}, IBAN: {IBAN}",
    "Background check for {PERSON} (SSN {US_SSN}) is complete.",
    "Login attempts from {IP_ADDRESS} were rate limited at {TIME}.",
    "Hey, it's {PERSON} - text me at {PHONE_NUMBER} when you land.",
    "Can you check why {IP_ADDRESS} cannot reach {IP_ADDRESS}?",
    "Update the payroll record: {US_SSN}, {PERSON}, {IBAN}.",
    "Card on file {CREDIT_CARD} declined; customer {PERSON} informed by phone {PHONE_NUMBER}.",
    "Escalated by {PERSON} on {DATE}; see incident {UUID}.",
    "{EMAIL_ADDRESS} reported that build {SHA} broke the login page.",
    "Summarise this email thread between {PERSON} and {PERSON} about the {COMPANY} renewal.",
    "Write a polite reply to {PERSON}, who complained that her card {CREDIT_CARD} was charged twice.",
    "Translate to German: \"Please call me back on {PHONE_NUMBER}, {PERSON}\"",
    "Assignee: {PERSON}\nReporter: {PERSON}\nCreated: {TIMESTAMP}",
    "CC: {PERSON}, {PERSON}",
    "{PERSON}: can you look at the failing job {UUID}?\n{PERSON}: on it, the runner at {IP_ADDRESS} is down.",
    "Draft a cover letter for {PERSON}, phone {PHONE_NUMBER}, email {EMAIL_ADDRESS}, applying to {COMPANY} in {CITY}.",
    "The customer ({PERSON}, {EMAIL_ADDRESS}) says order {ORDER} never arrived at {ADDRESS}.",
    "Best regards,\n{PERSON}\n{JOB}, {COMPANY}\nTel. {PHONE_NUMBER}",
    "Please verify the identity of {PERSON} born {DATE} with SSN {US_SSN}.",
    "Here is the CSV row: {PERSON};{EMAIL_ADDRESS};{PHONE_NUMBER};{CITY}",
    "Our records show IBAN {IBAN} for {COMPANY}; the signatory is {PERSON}.",
    "I was told by {PERSON} from {COMPANY} to send my card details: {CREDIT_CARD}, exp {EXPIRY}.",
    "Attendees: {PERSON}, {PERSON} and {PERSON}. Room booked until {TIME}.",
    "nginx: {IP_ADDRESS} - - [{CLF_TIME}] \"GET /api/v2/orders/{ORDER} HTTP/1.1\" 200 512",
    "ssh into {IP_ADDRESS} as deploy and restart the worker, {PERSON} approved it.",
    "Please add {PERSON} ({PHONE_NUMBER}) as an emergency contact.",
    "Fraud alert: {CREDIT_CARD} used from {IP_ADDRESS} at {TIMESTAMP}.",
    "The landlord, {PERSON}, wants the deposit sent to {IBAN}.",
    "Can {PERSON} from {CITY} join the call? His number is {PHONE_NUMBER}.",
    "Rewrite this bio: {PERSON} is a {JOB} at {COMPANY} who lives in {CITY}.",
    "taxpayer id (SSN): {US_SSN}; employer {COMPANY}",
    "DNS for the VPN resolves to {IP_ADDRESS}; fallback {IP_ADDRESS}.",
    "Signed,\n{PERSON}",
    "Congratulations to {PERSON} on the promotion!",
    "Notes from the interview with {PERSON}: strong on SQL, weak on ops.",
    "I, {PERSON}, authorise {COMPANY} to debit {IBAN} monthly.",
    "WhatsApp {PHONE_NUMBER} or e-mail {EMAIL_ADDRESS} for the keys.",
]

# Hard negatives: nothing here is one of the seven entities.
OWN_NEGATIVE = [
    "The job finished at {DATE} {TIME} with exit code 0.",
    "Order #{ORDER} and order #{ORDER} were merged.",
    "Commit {SHA} fixes the flaky test; see {UUID}.",
    "Version {VERSION} was released on {DATE}.",
    "The reading was 1234567 at {TIME}, then 7654321.",
    "Reference {BADCARD} does not match any record.",
    "Please ignore the noise in this signal and summarise the trend.",
    "Pipeline {UUID} ran build {SHA} at {TIME} on {DATE}.",
    "Tracking number {ORDER}{ORDER} is out for delivery.",
    "Our quarterly revenue grew 12.5 percent to 4,500,000 dollars.",
    "Invoice {ORDER} was paid on {DATE} at {TIME}.",
    "Rollback to {SHA} scheduled for {DATE}.",
    "Sensor 42 logged 3.14159 and 2.71828 before {TIME}.",
    "Upgrade from {VERSION} to {VERSION} before {DATE}.",
    "The card number {BADCARD} failed validation.",
    "Event at {TIMESTAMP}: request {UUID} retried 3 times.",
    "Epoch {EPOCH} corresponds to {TIMESTAMP}.",
    "Short SHA {SHORTSHA} and {SHORTSHA} differ only in the lockfile.",
    "The {COMPANY} office in {CITY} closes on {DATE}.",
    "Ship to {ADDRESS} by {DATE}.",
    "Price went from 1,299.00 to 1,149.99 on {DATE}.",
    "Run #{ORDER} took 00:12:45 and used 2048 MB.",
    "Set the timeout to 30000 ms and the port to 8080.",
    "Matrix dims 1024 x 768, batch 64, lr 0.0003, seed 1234567.",
    "Python {VERSION} and Node {VERSION} are installed.",
    "Deadline: {DATE}, {TIME} CET.",
    "Our new office is on {STREET} in {CITY}.",
    "Artifact sha256:{SHA256} pushed at {TIMESTAMP}.",
]

# Written after the last rule change, for a third split (`eval-final.jsonl`,
# seed 303) that nothing was tuned on or looked at before its figures were
# taken: the other two halves of the templates were, by then, both looked at
# (see README.md).
FINAL_OWN = [
    "{\"name\": \"{PERSON}\", \"email\": \"{EMAIL_ADDRESS}\", \"phone\": \"{PHONE_NUMBER}\"}",
    "| {PERSON} | {EMAIL_ADDRESS} | {PHONE_NUMBER} |",
    "Can you format this contact for Outlook? {PERSON}, tel: {PHONE_NUMBER}, mail: {EMAIL_ADDRESS}",
    "My card no. is {CREDIT_CARD} and the CVV is 123, please don't store it.",
    "Please refund {CREDIT_CARD} (the card ending in the last four digits).",
    "SSN# {US_SSN}",
    "The applicant, {PERSON}, listed social security no. {US_SSN} on the form.",
    "Our IBAN changed to {IBAN}. Please update your records.",
    "Bank details for {PERSON}: IBAN {IBAN}, BIC DEUTDEFF",
    "Server logs show repeated failures from {IP_ADDRESS} since {TIMESTAMP}.",
    "Allow-list request: {IP_ADDRESS}, {IP_ADDRESS} (requested by {PERSON})",
    "Reach out to {PERSON} via {EMAIL_ADDRESS} or by phone at {PHONE_NUMBER}.",
    "Ph. {PHONE_NUMBER} | {EMAIL_ADDRESS}",
    "Hi {PERSON},\n\nthanks for the quick reply. I'll call you at {PHONE_NUMBER} tomorrow.\n\nCheers,\n{PERSON}",
    "Who is {PERSON}? I found their name on invoice {ORDER}.",
    "{PERSON} wrote: \"my new number is {PHONE_NUMBER}\"",
    "Write a birthday message for my colleague {PERSON}.",
    "Paying rent to {PERSON}, account {IBAN}, amount 950 EUR, due {DATE}.",
    "Please remove {EMAIL_ADDRESS} and {PHONE_NUMBER} from the mailing list.",
    "Customer {PERSON} (SSN {US_SSN}) disputes a charge on {CREDIT_CARD}.",
    "VPN peer {IP_ADDRESS} handshake failed; contact the on-call engineer, {PERSON}.",
    "Add a calendar invite for me and {PERSON} on {DATE} at {TIME}.",
    "To: {EMAIL_ADDRESS}\nCc: {EMAIL_ADDRESS}\nSubject: contract for {PERSON}",
    "If the card {CREDIT_CARD} is declined, try the backup one, {CREDIT_CARD}.",
]
FINAL_NEGATIVE = [
    "The build {SHORTSHA} passed 1,284 tests in 00:04:51 on {DATE}.",
    "Use UUID {UUID} as the idempotency key and retry after {TIME}.",
    "Invoice no. {ORDER}, total 4,312.50 EUR, due {DATE}.",
    "Upgrade the cluster from {VERSION} to {VERSION} during the window on {DATE}.",
    "The card number {BADCARD} is not valid, please check it.",
    "Event {UUID} at {TIMESTAMP}: queue depth 1048576, lag 3200 ms.",
    "Order #{ORDER} was split into shipments {ORDER} and {ORDER}.",
    "The Product Manager and the Head of Sales met in New York on {DATE}.",
]


def luhn_fail(fake, rng):
    n = fake.credit_card_number()
    n = n[:-1] + str((int(n[-1]) + 1) % 10)
    return group_card(n) if len(n) == 16 and rng.random() < 0.5 else n


def group_card(n, sep=" "):
    if len(n) == 15:
        return sep.join([n[:4], n[4:10], n[10:]])
    return sep.join(n[i:i + 4] for i in range(0, len(n), 4))


def own_phone(rng):
    d = lambda k: "".join(str(rng.randint(0, 9)) for _ in range(k))
    n = lambda k: str(rng.randint(2, 9)) + d(k - 1)
    forms = [
        lambda: f"+44 20 {n(4)} {d(4)}",
        lambda: f"({n(3)}) {n(3)}-{d(4)}",
        lambda: f"+1-{n(3)}-{n(3)}-{d(4)}",
        lambda: f"0049 30 {n(7)}",
        lambda: f"0{rng.randint(1, 7)} {d(2)} {d(2)} {d(2)} {d(2)}",
        lambda: f"+33 {rng.randint(1, 7)} {d(2)} {d(2)} {d(2)} {d(2)}",
        lambda: f"{n(3)}.{n(3)}.{d(4)}",
        lambda: f"+49 {n(3)} {n(7)}",
        lambda: f"+31 6 {n(8)}",
        lambda: f"{n(3)}-{n(3)}-{d(4)}",
        lambda: f"+1 ({n(3)}) {n(3)}-{d(4)}",
        lambda: f"07{d(3)} {d(6)}",
        lambda: f"+91 {n(5)} {d(5)}",
        lambda: f"+61 4{d(2)} {d(3)} {d(3)}",
    ]
    return rng.choice(forms)()


def person(fake, rng, kind="person"):
    if kind in ("first_name", "first_name_nonbinary"):
        return fake.first_name()
    if kind in ("first_name_male",):
        return fake.first_name_male()
    if kind in ("first_name_female",):
        return fake.first_name_female()
    if kind in ("last_name", "last_name_male", "last_name_female"):
        return fake.last_name()
    first = {"name_male": fake.first_name_male, "name_female": fake.first_name_female}.get(kind, fake.first_name)()
    r = rng.random()
    if kind == "PERSON" and r < 0.12:
        return first
    if r > 0.95:
        return f"{first} {fake.first_name()} {fake.last_name()}"
    return f"{first} {fake.last_name()}"


def value(kind, fake, us, rng):
    """The text for a placeholder (entity or not) and its entity, if any."""
    k = kind.lower()
    if kind == "PERSON" or k in ("person", "name", "name_male", "name_female", "first_name", "first_name_male",
                                 "first_name_female", "first_name_nonbinary", "last_name", "last_name_male",
                                 "last_name_female"):
        return person(fake, rng, kind), "PERSON"
    if k in ("email_address", "email"):
        return fake.email(), "EMAIL_ADDRESS"
    if k in ("phone_number",):
        return (fake.phone_number() if rng.random() < 0.6 else own_phone(rng)), "PHONE_NUMBER"
    if k in ("credit_card", "credit_card_number"):
        n = fake.credit_card_number()
        r = rng.random()
        if r < 0.35 and len(n) in (15, 16):
            n = group_card(n)
        elif r < 0.5 and len(n) in (15, 16):
            n = group_card(n, "-")
        return n, "CREDIT_CARD"
    if k == "iban":
        n = fake.iban()
        if rng.random() < 0.5:
            n = " ".join(n[i:i + 4] for i in range(0, len(n), 4))
        return n, "IBAN"
    if k in ("us_ssn", "ssn"):
        n = us.ssn()
        return (n.replace("-", " ") if rng.random() < 0.15 else n), "US_SSN"
    if k in ("ip_address",):
        return (fake.ipv4() if rng.random() < 0.65 else fake.ipv6()), "IP_ADDRESS"
    # Not entities.
    # Dates come from the seeded rng: Faker's date providers count from "now".
    when = datetime.datetime(2000, 1, 1) + datetime.timedelta(seconds=rng.randint(0, 26 * 365 * 86400))
    fillers = {
        "date": lambda: when.strftime(rng.choice(["%Y-%m-%d", "%d/%m/%Y", "%m.%d.%Y", "%B %d, %Y", "%d.%m.%Y"])),
        "time": lambda: when.strftime("%H:%M:%S"),
        "timestamp": lambda: when.strftime(rng.choice(["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S", "%Y%m%dT%H%M%S",
                                                       "%Y-%m-%dT%H:%M:%S.%f+00:00"])),
        "clf_time": lambda: when.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "epoch": lambda: str(rng.randint(1_000_000_000, 1_800_000_000) * rng.choice([1, 1000])),
        "order": lambda: str(rng.randint(10_000_000, 999_999_999)),
        "sha": lambda: fake.sha1(),
        "sha256": lambda: fake.sha256(),
        "shortsha": lambda: fake.sha1()[:rng.choice([7, 8, 10, 12])],
        "uuid": lambda: str(fake.uuid4()),
        "badcard": lambda: luhn_fail(fake, rng),
        "version": lambda: rng.choice([f"{rng.randint(0, 20)}.{rng.randint(0, 30)}.{rng.randint(0, 200)}",
                                       f"v{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)}",
                                       f"{rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9999)}"]),
        "expiry": lambda: f"{rng.randint(1, 12):02d}/{rng.randint(24, 33)}",
        "company": fake.company, "organization": fake.company,
        "city": fake.city, "country": fake.country, "address": fake.address, "street": fake.street_address,
        "street_name": fake.street_name, "building_number": fake.building_number,
        "secondary_address": lambda: us.secondary_address(), "postcode": fake.postcode,
        "zipcode": lambda: us.zipcode(), "state_abbr": lambda: us.state_abbr(),
        "job": fake.job, "url": fake.url, "year": lambda: str(rng.randint(1950, 2025)),
        "age": lambda: str(rng.randint(18, 95)), "date_time": lambda: when.strftime("%B %d, %Y %H:%M"),
        "date_of_birth": lambda: str(datetime.date(rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28))), "day_of_week": fake.day_of_week,
        "nationality": lambda: rng.choice(["German", "French", "Italian", "Spanish", "Dutch", "British", "American",
                                           "Mexican", "Japanese", "Indian"]),
        "nation_woman": lambda: rng.choice(["a German woman", "an Italian woman", "a Dutch woman", "a Kenyan woman"]),
        "nation_plural": lambda: rng.choice(["Germans", "Italians", "Canadians", "Brazilians"]),
        "prefix": fake.prefix, "prefix_male": fake.prefix_male, "prefix_female": fake.prefix_female,
        "us_driver_license": lambda: rng.choice("ABCDEFGHKLMNPRSW") + str(rng.randint(1_000_000, 99_999_999)),
    }
    return fillers[k](), None


def render(template, pattern, fakes, us, rng):
    fake = fakes[rng.choice(LOCALES)]
    text, spans, pos = "", [], 0
    for m in pattern.finditer(template):
        text += template[pos:m.start()]
        v, entity = value(m.group(1), fake, us, rng)
        if entity:
            spans.append({"entity": entity, "start": len(text.encode()), "end": len((text + v).encode())})
        text += v
        pos = m.end()
    text += template[pos:]
    return {"text": text, "spans": spans}


def presidio_templates():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp,
                        "presidio-evaluator==0.3.2"], check=True)
        wheel = next(pathlib.Path(tmp).glob("presidio_evaluator-*.whl"))
        with zipfile.ZipFile(wheel) as z:
            raw = z.read("presidio_evaluator/data_generator/raw_data/templates.txt").decode("utf-8", "replace")
    lines = [l.strip() for l in raw.splitlines() if l.strip()]
    # The file writes line breaks as a literal backslash-n; one line has single braces.
    return [re.sub(r"(?<!\{)\{(\w+)\}(?!\})", r"{{\1}}", l.replace("\\n", "\n").replace("\\,", ","))
            for l in lines]


def split(name, own, negatives, presidio, seed, n, presidio_share=0.4):
    rng = random.Random(seed)
    fakes = {}
    for k, loc in enumerate(LOCALES):
        fakes[loc] = Faker(loc)
        fakes[loc].seed_instance(seed * 100 + k)
    us = fakes["en_US"]
    own_p, presidio_p = re.compile(r"\{([A-Z_0-9]+)\}"), re.compile(r"\{\{([a-z_0-9]+)\}\}")
    rows = []
    for _ in range(n):
        r = rng.random()
        if r < 0.15:
            row = render(rng.choice(negatives), own_p, fakes, us, rng)
            row["source"] = "negative"
        elif r < 0.15 + presidio_share:
            row = render(rng.choice(presidio), presidio_p, fakes, us, rng)
            row["source"] = "presidio"
        else:
            row = render(rng.choice(own), own_p, fakes, us, rng)
            row["source"] = "own"
        rows.append(row)
    with open(HERE / name, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return rows


if __name__ == "__main__":
    # Some Faker locale data lives in sets: fix the hash seed so runs repeat.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, "PYTHONHASHSEED": "0"})
    presidio = presidio_templates()
    assert len(presidio) > 200, len(presidio)
    # Disjoint templates: even-indexed ones for tuning, odd-indexed ones held out.
    tune = split("eval-tune.jsonl", OWN[0::2], OWN_NEGATIVE[0::2], presidio[0::2], seed=101, n=2500)
    held = split("eval-heldout.jsonl", OWN[1::2], OWN_NEGATIVE[1::2], presidio[1::2], seed=202, n=3000)
    final = split("eval-final.jsonl", FINAL_OWN, FINAL_NEGATIVE, [], seed=303, n=1500, presidio_share=0.0)
    for name, rows in (("tune", tune), ("heldout", held), ("final", final)):
        counts = {}
        for row in rows:
            for s in row["spans"]:
                counts[s["entity"]] = counts.get(s["entity"], 0) + 1
        print(name, len(rows), "samples", dict(sorted(counts.items())))
