"""Generates the labelled PII evaluation sets (JSONL: text + gold spans).

Two splits with DISJOINT templates and different seeds: `eval-tune.jsonl`
(the rules were tuned looking at this one) and `eval-report.jsonl` (held out:
the figures in README.md come from it). Fake identities come from Faker
(MIT), in several locales; templates are written here.

Run: python3 -m venv /tmp/pii-venv && /tmp/pii-venv/bin/pip install faker==33.1.0
     /tmp/pii-venv/bin/python guardrails/training/pii/splits/generate.py
"""
import json
import pathlib
import random

from faker import Faker

HERE = pathlib.Path(__file__).resolve().parent  # training/pii/splits

TEMPLATES = [
    "Hi, my name is {PERSON} and my email is {EMAIL_ADDRESS}.",
    "Please call {PERSON} on {PHONE_NUMBER} before Friday.",
    "Charge it to card {CREDIT_CARD}, the billing contact is {PERSON}.",
    "Wire the refund to IBAN {IBAN} (account holder {PERSON}).",
    "Employee {PERSON}, SSN {US_SSN}, started on 2021-04-12.",
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
    "Build {SHA} deployed at {DATE}T{TIME}Z on host {IP_ADDRESS}.",
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
]
NEGATIVE = [
    "The job finished at {DATE} {TIME} with exit code 0.",
    "Order #{ORDER} and order #{ORDER} were merged.",
    "Commit {SHA} fixes the flaky test; see {UUID}.",
    "Version 2.14.3 was released on {DATE}.",
    "The reading was 1234567 at {TIME}, then 7654321.",
    "Reference {BADCARD} does not match any record.",
    "Please ignore the noise in this signal and summarise the trend.",
    "Pipeline {UUID} ran build {SHA} at {TIME} on {DATE}.",
    "Tracking number {ORDER}{ORDER} is out for delivery.",
    "Our quarterly revenue grew 12.5 percent to 4,500,000 dollars.",
]
# Written after the rules were last changed, and never used to change them:
# the final held-out split (eval-final.jsonl) whose figures README.md reports.
FINAL_TEMPLATES = [
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
]
FINAL_NEGATIVE = [
    "Invoice {ORDER} was paid on {DATE} at {TIME}.",
    "Rollback to {SHA} scheduled for {DATE}.",
    "Sensor 42 logged 3.14159 and 2.71828 before {TIME}.",
]
# Written after the PERSON rules were last changed (Unicode names, surname
# bigrams after a label): eval-final2.jsonl, later used to fix card and phone cues.
FINAL2_TEMPLATES = [
    "Approved by {PERSON} on {DATE}; questions to {EMAIL_ADDRESS}.",
    "The account owner, {PERSON}, asked us to update the IBAN to {IBAN}.",
    "Shift handover: {PERSON} covers nights, {PERSON} covers weekends.",
    "Customer name: {PERSON}. Phone: {PHONE_NUMBER}. Card: {CREDIT_CARD}.",
    "{PERSON} wrote: the server at {IP_ADDRESS} keeps timing out.",
    "Please add {PERSON} ({EMAIL_ADDRESS}) to the on-call rota.",
    "Tax form for {PERSON}, SSN {US_SSN}, was filed late.",
    "Got a voicemail from {PERSON} at {PHONE_NUMBER} about the refund.",
    "Reviewer: {PERSON}",
    "I think {PERSON} already paid with {CREDIT_CARD}.",
]
FINAL2_NEGATIVE = [
    "The New York office and the Product Manager role moved to Google Cloud on {DATE}.",
    "Customer Success met the United Nations team at {TIME} about ticket {UUID}.",
    "Release Notes for Version 2.3 mention Dark Mode and Single Sign-On.",
]
# Written after final2 was used: the report split, eval-final3.jsonl.
FINAL3_TEMPLATES = [
    "Quick note from {PERSON}: the card {CREDIT_CARD} was charged twice.",
    "Please ring {PHONE_NUMBER} and ask for {PERSON} in accounts.",
    "{PERSON} and {PERSON} signed the lease; deposit to {IBAN}.",
    "Our records show SSN {US_SSN} for the applicant {PERSON}.",
    "Admin login from {IP_ADDRESS} (user {EMAIL_ADDRESS}) at {TIME}.",
    "Courier will call {PHONE_NUMBER} before delivery to {PERSON}.",
    "Invoice for {PERSON}: pay by card {CREDIT_CARD} or transfer to {IBAN}.",
    "Hello {PERSON}, can you confirm your email is {EMAIL_ADDRESS}?",
    "Escalation contact: {PERSON}, {PHONE_NUMBER}",
    "Blocked {IP_ADDRESS} after 40 failed attempts on {DATE}.",
]
FINAL3_NEGATIVE = [
    "The San Francisco team and the Sales Director joined Microsoft Teams on {DATE}.",
    "Monthly Report: Europe West grew, Asia Pacific shrank, build {SHA} shipped.",
    "Order {ORDER} from Amazon Web Services arrived at {TIME}.",
]
LOCALES = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL"]


def luhn_fail(fake):
    n = fake.credit_card_number()
    return n[:-1] + str((int(n[-1]) + 1) % 10)


def value(kind, fakes, rng):
    fake = fakes["en_US"] if kind in ("US_SSN",) else rng.choice(list(fakes.values()))
    if kind == "PERSON":
        return f"{fake.first_name()} {fake.last_name()}" if rng.random() < 0.8 else fake.first_name()
    if kind == "EMAIL_ADDRESS":
        return fake.email()
    if kind == "PHONE_NUMBER":
        return fake.phone_number()
    if kind == "CREDIT_CARD":
        n = fake.credit_card_number()
        if rng.random() < 0.5 and len(n) == 16:
            n = " ".join(n[i:i + 4] for i in range(0, 16, 4))
        return n
    if kind == "IBAN":
        n = fake.iban()
        if rng.random() < 0.5:
            n = " ".join(n[i:i + 4] for i in range(0, len(n), 4))
        return n
    if kind == "US_SSN":
        return fake.ssn()
    if kind == "IP_ADDRESS":
        return fake.ipv4() if rng.random() < 0.7 else fake.ipv6()
    if kind == "DATE":
        return fake.date()
    if kind == "TIME":
        return fake.time()
    if kind == "ORDER":
        return str(rng.randint(10_000_000, 999_999_999))
    if kind == "SHA":
        return fake.sha1()
    if kind == "UUID":
        return str(fake.uuid4())
    if kind == "BADCARD":
        return luhn_fail(fake)
    raise KeyError(kind)


ENTITIES = {"PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN", "US_SSN", "IP_ADDRESS"}


def render(template, fakes, rng):
    text, spans, i = "", [], 0
    while i < len(template):
        if template[i] == "{":
            j = template.index("}", i)
            kind = template[i + 1:j]
            v = value(kind, fakes, rng)
            if kind in ENTITIES:
                spans.append({"entity": kind, "start": len(text.encode()), "end": len((text + v).encode())})
            text += v
            i = j + 1
        else:
            text += template[i]
            i += 1
    return {"text": text, "spans": spans}


def split(name, templates, negatives, seed, n):
    rng = random.Random(seed)
    fakes = {}
    for k, loc in enumerate(LOCALES):
        fakes[loc] = Faker(loc)
        fakes[loc].seed_instance(seed * 100 + k)
    with open(HERE / name, "w") as f:
        for _ in range(n):
            t = rng.choice(negatives) if rng.random() < 0.15 else rng.choice(templates)
            f.write(json.dumps(render(t, fakes, rng)) + "\n")


# Disjoint templates: even-indexed ones for tuning, odd-indexed held out.
split("eval-tune.jsonl", TEMPLATES[0::2], NEGATIVE[0::2], seed=1, n=1500)
split("eval-report.jsonl", TEMPLATES[1::2], NEGATIVE[1::2], seed=2, n=2000)
split("eval-final.jsonl", FINAL_TEMPLATES, FINAL_NEGATIVE, seed=3, n=2000)
split("eval-final2.jsonl", FINAL2_TEMPLATES, FINAL2_NEGATIVE, seed=4, n=2000)
split("eval-final3.jsonl", FINAL3_TEMPLATES, FINAL3_NEGATIVE, seed=5, n=2000)
print("wrote eval-tune, eval-report, eval-final, eval-final2 and eval-final3 (.jsonl)")
