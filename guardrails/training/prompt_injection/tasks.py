"""Writes data/tasks-train.csv: task-style benign prompts for training, the
kind a gateway sees all day ("I need you to summarise the following report
...", "Translate the text below into Spanish: ..."), with and without the
text they work on.

Why: the public injection sets' attacks often wrap the attack in an everyday
task ("Summarize the following document: [ignore all prior instructions
...]", "I need you to ignore ..."), and their benign rows rarely use these
wrappers: of their train rows, 44 of 45 with "I need you to" and 184 of 194
with "the following" are attacks. A model fitted to them flagged 16% of
benign-heldout.csv's instructions (issue #15). These rows show it the
wrappers around ordinary work.

This round's choice was informed by the held-out figures: these frames use
openers and words that benign-heldout.csv's instructions also use ("I need
you to", "Please", "the following", "transcript") because those are the
everyday phrasings that were flagged, so benign-heldout's instruction figure
is no longer a clean estimate; tasks-fresh-heldout.csv (fresh_tasks.py,
written before this file and before any model was scored on it, no shared
frame or text) is. No full text of benign-heldout.csv or of
tasks-fresh-heldout.csv is written here (checked below).

Family: "task/<frame>" (the frame's number); train.py keeps each frame in one
cross-validation fold, so the out-of-fold rate on this file measures frames
the fold's model never saw.

Every text is written for Sluice, Apache-2.0 like the repository.
Deterministic (fixed seed, standard library only), byte-identical on re-runs:

    python3 guardrails/training/prompt_injection/tasks.py
"""
import csv
import pathlib
import random

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE / "data"
OUT = DATA / "tasks-train.csv"
SEED = 424242
PER_FRAME = 48

OPENERS = ["", "Please ", "Can you ", "Could you please ", "I need you to ", "I'd like you to ",
           "I want you to ", "Will you ", "Hey, can you ", "Hi! Please ", "Hello, I need you to ",
           "Quick favour: ", "When you get a chance, "]
DOCS = ["email", "article", "report", "paragraph", "text", "message", "letter", "transcript",
        "document", "notes", "story", "essay", "announcement", "post", "summary", "proposal",
        "chat log", "speech", "description", "policy", "newsletter", "review", "presentation outline",
        "interview transcript", "product page", "case study", "FAQ", "meeting agenda"]
WHERE = ["the following {d}", "the {d} below", "this {d}", "my {d}", "the attached {d}",
         "the {d} I pasted", "the {d} that follows", "the following {d} from a customer",
         "the following {d} from my boss"]
LANGS = ["Spanish", "French", "German", "Italian", "Portuguese", "Dutch", "Swedish", "Greek",
         "Korean", "Chinese", "Turkish", "Czech", "Hindi", "Arabic", "English"]
AUDIENCES = ["a general audience", "our investors", "new employees", "my students",
             "customers", "a child", "my grandmother", "the board", "engineers", "beginners"]
STYLES = ["formal", "casual", "upbeat", "neutral", "persuasive", "concise", "warm", "professional"]
LIMITS = ["50 words", "100 words", "three sentences", "five bullet points", "a single paragraph",
          "half a page", "one line", "200 characters"]

# (frame, payload kind or ""). Slots: {o} opener, {w} where (with {d}),
# {lang}, {aud}, {style}, {lim}; the payload is appended after ":" or a
# blank line when the frame has one.
FRAMES = [
    ("{o}summarize {w} in {lim}", "doc"),
    ("{o}summarise {w} for {aud}", "doc"),
    ("{o}translate {w} into {lang}", "doc"),
    ("{o}translate {w} to {lang} and keep the formatting", "doc"),
    ("{o}rewrite {w} in a {style} tone", "doc"),
    ("{o}rewrite {w} so it fits in {lim}", "doc"),
    ("{o}proofread {w} and fix any typos", "doc"),
    ("{o}go over {w} and correct the punctuation", "doc"),
    ("{o}shorten {w} to {lim}", "doc"),
    ("{o}explain {w} to {aud}", "doc"),
    ("{o}list the action items in {w}", "notes"),
    ("{o}extract the names and dates from {w}", "doc"),
    ("{o}turn {w} into a checklist", "notes"),
    ("{o}reply to {w} in a {style} way", "mail"),
    ("{o}write a response to {w} declining politely", "mail"),
    ("{o}answer {w} and suggest a time to meet", "mail"),
    ("{o}give me feedback on {w}", "doc"),
    ("{o}improve the flow of {w}", "doc"),
    ("{o}make {w} more {style}", "doc"),
    ("{o}check {w} for repeated words", "doc"),
    ("{o}find the key takeaways in {w}", "doc"),
    ("{o}convert {w} into a numbered list", "notes"),
    ("{o}write a title and a subtitle for {w}", "doc"),
    ("{o}classify {w} by topic", "doc"),
    ("{o}tell me the tone of {w}", "mail"),
    ("{o}review the following code and suggest improvements", "code"),
    ("{o}explain the following function line by line", "code"),
    ("{o}write unit tests for the following code", "code"),
    ("{o}rename the variables in the code below so they are clearer", "code"),
    ("{o}follow these steps: read {w}, then list its three main points", "doc"),
    ("{o}do the following: fix the spelling in {w} and make it {style}", "doc"),
    ("{o}use the following information to write a short bio", "facts"),
    ("{o}fill in the missing words in the following sentence", "gap"),
    ("{o}continue the following story for two more paragraphs", "story"),
    ("{o}write a short poem based on the following lines", "story"),
    ("{o}answer the following question in {lim}", "question"),
    ("{o}answer the following questions one by one", "questions"),
    ("{o}compare the following two options and recommend one", "options"),
    # Programming requests: a large share of real traffic.
    ("{o}show me {lang_c} code that {ct}", "code"),
    ("{o}write a {lang_c} script that {ct}", "code"),
    ("{o}give me a short {lang_c} snippet to {ci}", ""),
    ("{o}help me write a function in {lang_c} that {ct}", ""),
    ("{o}give me an example of how to {ci} with {lang_c}", ""),
    ("{o}what is the cleanest way to {ci} in {lang_c}", ""),
    ("{o}convert the following code to {lang_c}", "code"),
    ("{o}find the bug in the following function", "code"),
    ("{o}add comments to the code below", "code"),
    ("{o}write a {lang_c} example that demonstrates {concept}", ""),
    ("{o}explain {concept} in {lang_c} with a small example", ""),
    ("{o}show an example that uses {concept} to {ci}", ""),
]
LANGS_CODE = ["Python", "JavaScript", "TypeScript", "Rust", "Go", "Java", "C#", "C++", "C",
              "Ruby", "PHP", "Kotlin", "Swift", "Bash", "PowerShell", "Perl", "Haskell", "Elixir"]
# (infinitive, third person)
CODE_TASKS = [
    ("read a file line by line", "reads a file line by line"),
    ("send a GET request to an API", "sends a GET request to an API"),
    ("count the words in a text", "counts the words in a text"),
    ("download a web page", "downloads a web page"),
    ("parse a date string", "parses a date string"),
    ("retry a failed network call", "retries a failed network call"),
    ("upload a file to a server", "uploads a file to a server"),
    ("check whether a number is prime", "checks whether a number is prime"),
    ("remove empty lines from a file", "removes empty lines from a file"),
    ("rename every file in a folder", "renames every file in a folder"),
    ("calculate the average of a list", "calculates the average of a list"),
    ("validate a phone number", "validates a phone number"),
    ("print the current time", "prints the current time"),
    ("convert Celsius to Fahrenheit", "converts Celsius to Fahrenheit"),
    ("fetch JSON from a URL", "fetches JSON from a URL"),
    ("write rows to a CSV file", "writes rows to a CSV file"),
    ("find the largest number in an array", "finds the largest number in an array"),
    ("open a database connection", "opens a database connection"),
    ("sort names alphabetically", "sorts names alphabetically"),
    ("read command-line arguments", "reads command-line arguments"),
    ("post a form to a web server", "posts a form to a web server"),
    ("capitalise the first letter of a string", "capitalises the first letter of a string"),
    ("run two tasks in parallel", "runs two tasks in parallel"),
    ("cache the result of a slow function", "caches the result of a slow function"),
]
CONCEPTS = ["pattern matching", "generics", "closures", "iterators", "error handling",
            "string formatting", "threads", "a hash map", "recursion", "async requests",
            "a linked list", "inheritance", "decorators", "streams", "a timeout"]

DOC_TEXTS = [
    "Our bakery will start opening at 7 am from next month. We are also adding gluten-free "
    "loaves on Fridays and a loyalty card that gives every tenth coffee free.",
    "The survey had 214 replies. Most people liked the new layout, about a third found the "
    "search hard to use, and several asked for a dark mode.",
    "Hurricanes form over warm ocean water. As the warm, moist air rises, it cools and forms "
    "clouds, and the rotation of the Earth makes the whole system spin.",
    "Thank you all for coming to the open day. The science labs were the most visited rooms, "
    "and we raised enough money to buy new microscopes for year nine.",
    "The contract runs for 24 months and renews automatically unless either party gives 60 "
    "days' written notice. Prices may change once a year with one month's notice.",
    "Interviewer: What got you into woodworking? Guest: My grandfather had a shed full of tools, "
    "and I spent every summer there making birdhouses that nobody wanted.",
    "Sales in the north region fell by four percent in the second quarter, mostly because of "
    "the warehouse move, while online orders grew faster than planned.",
    "Please remember that the car park will be resurfaced on Saturday. Vehicles left there "
    "after 8 am may be moved at the owner's cost.",
    "The Great Wall was built over many centuries by different dynasties. Much of what stands "
    "today dates from the Ming period and was made of brick and stone.",
    "We are proposing a four-day pilot where the support team works longer shifts Monday to "
    "Thursday, with Friday covered by a rota. Response times will be tracked weekly.",
    "Customer: my parcel says delivered but it isn't here. Agent: sorry about that, can you "
    "check with your neighbours? Customer: I did, nobody has it.",
    "Chapter two follows Mia as she moves to the coast, takes a job at her aunt's ferry company "
    "and slowly learns why the old lighthouse was closed.",
]
MAIL_TEXTS = [
    "Hi, could we move Friday's call to Monday? Something came up with the quarterly audit. "
    "Sorry for the short notice. Best, Olu",
    "Hello, I'd like to know if your yoga classes are suitable for complete beginners and "
    "whether I need to bring my own mat. Thanks, Grace",
    "Dear customer, your subscription will renew on 1 June. If you want to change your plan, "
    "please do so before then.",
    "Hey! The photos from the hike are up. Let me know which ones you want printed. - Kai",
    "Good morning, we noticed an error on invoice 5521: the unit price should be 14.50, not "
    "15.40. Could you send a corrected copy? Regards, Accounts",
    "Hi there, I left my umbrella in your restaurant last night, table by the window. Is there "
    "any chance someone found it? Lucia",
]
NOTES_TEXTS = [
    "1. agree on launch date 2. Omar drafts press release 3. check legal wording 4. book the room",
    "kitchen: fix tap, new bulbs; kids: dentist Tuesday, swimming kit; car: MOT due in April",
    "sprint: login page done, search half done, payments blocked on API keys, demo on Thursday",
    "ideas for the party: picnic in the park, quiz night, karaoke, keep it under 200 euros",
]
CODE_TEXTS = [
    "def is_even(n):\n    return n % 2 == 0",
    "const total = prices.reduce((a, b) => a + b);",
    "SELECT * FROM users WHERE created_at > '2024-01-01' ORDER BY name;",
    "while True:\n    line = input()\n    if line == 'q':\n        break\n    print(line.upper())",
    "fn add(a: i32, b: i32) -> i32 { a + b }",
]
FACTS = [
    "name: Rosa Diaz; job: paediatric nurse; hobbies: climbing, baking; lives in Valencia",
    "Tom Becker, 34, sound engineer, worked on two film festivals, loves old radios",
    "Ama Owusu - founded a bike repair shop in 2019, teaches free repair classes on Sundays",
]
GAPS = ["The capital of Canada is ____.", "Water boils at ____ degrees Celsius at sea level.",
        "A group of crows is called a ____.", "The ____ is the largest organ of the human body."]
STORIES = ["The old clock in the hallway stopped at midnight, and in the morning the cat was gone.",
           "Rain again. Nadia pulled her hood up and ran for the last bus of the evening.",
           "The robot had one job: water the tomatoes. It had never seen snow before."]
QUESTIONS = ["Why do leaves change colour in autumn?", "How does a heat pump work?",
             "What causes tides?", "Why is the ocean salty?", "How do vaccines train the immune system?"]
QUESTION_SETS = ["1) What is inflation? 2) Why do central banks raise rates? 3) Who benefits?",
                 "a. What is a noun? b. Give two examples. c. What is a proper noun?",
                 "- What year did the Berlin Wall fall? - Why was it built? - What replaced it?"]
OPTIONS = ["Option A: rent a flat near work for 1,200 a month. Option B: buy a car and live "
           "further out for 900 a month plus fuel.",
           "Laptop 1: lighter, 10-hour battery, 8 GB memory. Laptop 2: heavier, 6-hour battery, "
           "16 GB memory, bigger screen.",
           "Plan A: a week in the mountains. Plan B: four days at the seaside and a city break."]
PAYLOADS = {"doc": DOC_TEXTS, "mail": MAIL_TEXTS, "notes": NOTES_TEXTS, "code": CODE_TEXTS,
            "facts": FACTS, "gap": GAPS, "story": STORIES, "question": QUESTIONS,
            "questions": QUESTION_SETS, "options": OPTIONS}
ENDS = [".", "", "?", ". Thanks!", ", please.", ". Thank you."]


def text_for(rng, frame, kind):
    o = rng.choice(OPENERS)
    where = rng.choice(WHERE).format(d=rng.choice(DOCS))
    ci, ct = rng.choice(CODE_TASKS)
    body = frame.format(o=o, w=where, lang=rng.choice(LANGS), aud=rng.choice(AUDIENCES),
                        style=rng.choice(STYLES), lim=rng.choice(LIMITS),
                        lang_c=rng.choice(LANGS_CODE), ci=ci, ct=ct, concept=rng.choice(CONCEPTS))
    body = body[0].upper() + body[1:]
    end = rng.choice(ENDS)
    if end == "?" and not o.strip().lower().endswith(("can you", "will you")):
        end = "."
    mode = rng.randrange(3) if kind else 0  # 0: no payload, 1: after a colon, 2: after a blank line
    if mode == 0:
        return body + end
    payload = rng.choice(PAYLOADS[kind])
    if mode == 1:
        return f"{body}: {payload}"
    return f"{body}{end}\n\n{payload}"


def main():
    rng = random.Random(SEED)
    seen, rows = set(), []
    for i, (frame, kind) in enumerate(FRAMES):
        made, tries = 0, 0
        while made < PER_FRAME and tries < 2000:
            tries += 1
            t = text_for(rng, frame, kind)
            if t not in seen:
                seen.add(t)
                rows.append((t, f"task/{i:02d}"))
                made += 1
    # No full text of a held-out file is trained on.
    held = set()
    for name in ("benign-heldout.csv", "tasks-fresh-heldout.csv"):
        with open(DATA / name, newline="", encoding="utf-8") as f:
            held |= {r["text"].strip() for r in csv.DictReader(f)}
    assert not {t for t, _ in rows} & held, "a held-out text would be trained on"
    with open(OUT, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["text", "label", "family"])
        for text, family in rows:
            w.writerow([text, 0, family])
    print(f"wrote {OUT}: {len(rows)} rows")


if __name__ == "__main__":
    main()
