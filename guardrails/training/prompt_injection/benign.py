"""Writes Sluice's benign prompt sets: everyday traffic that a gateway must let
through, which the public injection datasets barely contain (their benign rows
are mostly technical questions and questions about attacks; their short texts
are nearly all attacks, so a model fitted to them alone flags "Hello").

Every text here is written for Sluice (no third-party text), Apache-2.0 like
the repository. Families:

  greeting      small talk and first messages ("Hello", "Good morning!")
  ack           acknowledgements and short follow-ups ("Thanks, that helps.")
  instruction   short everyday instructions ("Summarize this article ...")
  everyday      requests about life, work, travel, cooking, writing
  support       customer-support messages
  code          programming questions and requests
  system        system prompts an application sends
  security      prompts that discuss security or prompt injection without
                attempting one
  ignore        benign sentences that use "ignore", "forget", "override" ...
  multilingual  the above in French, German, Spanish, Portuguese, Italian,
                Dutch, Polish, Turkish, Swedish, Japanese and Chinese

Held out by construction: every list of phrases and every template is split
in two (even positions -> train, odd -> held-out), and held-out rows are
built only from the held-out halves, so no held-out sentence, template or
filler phrase is ever seen in training. Deterministic (fixed seed), output
identical on re-runs.

    python3 guardrails/training/prompt_injection/benign.py

writes data/benign-train.csv and data/benign-heldout.csv (text,label,family;
label is always 0).
"""
import csv
import pathlib
import random

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "data"
SEED = 20261203

# --- phrase lists ------------------------------------------------------------

GREETINGS = [
    "Hello", "Hi", "Hey", "Hello there", "Hi there", "Hey there", "Good morning",
    "Good afternoon", "Good evening", "Morning", "Howdy", "Greetings", "Hiya",
    "Yo", "Hey hey", "Good day", "Hello again", "Hi again", "Evening",
    "Hey, it's me again", "Hi, hope you're well", "Hello friend", "Hi team",
    "Hey buddy", "Salutations",
]
GREETING_FOLLOW = [
    "", "!", ".", "!!", " :)", ", how are you?", ", how are you doing today?",
    ", how's it going?", ", are you there?", ", can you help me?",
    ", I have a question.", ", what can you do?", ", nice to meet you.",
    ", I need a hand with something.", ", quick question.", " - how are things?",
    ", what's up?", ", I'm new here.", ", who am I talking to?",
    ", can we chat for a minute?", ", is this the right place to ask questions?",
    ", hope your day is going well.", ", long time no see.",
    ", I could use some advice.",
]
SMALL_TALK = [
    "How are you?", "What's up?", "How's your day going?", "Are you a bot?",
    "What is your name?", "Who made you?", "What can you help me with?",
    "Tell me a joke.", "Tell me something interesting.", "I'm bored.",
    "It's raining again here.", "I just got back from vacation.",
    "What's the weather like where you are?", "Do you like music?",
    "Say something nice.", "Be brief.", "Say something.", "Are you still there?",
    "Can you hear me?", "Let's chat.", "What day is it today?",
    "Do you have a favourite book?", "I had a long day.", "Guess what happened today.",
    "Can I ask you something?", "You there?", "Testing, testing.", "Just saying hi.",
    "Nice weather today, isn't it?", "What should I have for dinner?",
    "How are you today?", "How are you doing?", "How is your week going?", "How have you been?",
    "What are you up to?", "Are you having a good day?", "How's everything?",
    "How are things with you?", "What's new?", "How was your weekend?",
    "Did you sleep well?", "I'm back.", "Happy Friday!", "Happy new year!",
    "Merry Christmas!", "Good night.", "See you tomorrow.", "Bye!", "Talk soon.",
    "Have a nice day.", "Sorry, I was away for a bit.", "I'm fine, thanks. And you?",
    "Not bad, you?", "Pretty good, thanks for asking.", "Long day at work.",
    "Can you keep me company for a while?", "What are you good at?",
]
ACKS = [
    "Thanks", "Thank you", "Thanks, that helps", "Thanks a lot", "Thank you so much",
    "Great, thanks", "Perfect", "OK", "Okay", "Got it", "Cool", "Awesome",
    "That makes sense", "Understood", "Nice", "Sounds good", "Much appreciated",
    "Cheers", "Brilliant", "Alright", "Yes", "No", "Sure", "Fine", "Exactly",
    "Not quite", "That's not what I meant", "Interesting", "Wow", "I see",
    "Fair enough", "Good point", "Makes sense now", "Lovely", "Great job",
    "That worked", "It works now", "That didn't work", "Hmm", "Noted",
]
ACK_END = ["", ".", "!", "!!", ", thanks!", " :)", ", that helps.", ", appreciate it."]
FOLLOW_UPS = [
    "Can you make it shorter?", "Try again, but more formal.", "Make it friendlier.",
    "And what about the second one?", "Can you explain that again?",
    "Give me another example.", "Go on.", "Continue.", "Keep going.",
    "What do you mean?", "Can you say that in simpler words?", "More detail, please.",
    "Now do the same for the next paragraph.", "Start over.", "Shorter, please.",
    "Use bullet points instead.", "Put that in a table.", "Translate it to French.",
    "Can you add a title?", "Remove the last sentence.", "Why?", "How so?",
    "Make it sound less robotic.", "One more time, please.", "Add an emoji or two.",
    "Is that correct?", "Are you sure?", "What would you change?", "Redo it.",
    "Write it as a poem instead.", "Now in plain English.", "Undo that change.",
]
VERBS = [
    "Summarize", "Summarise", "Translate", "Rewrite", "Proofread", "Shorten",
    "Explain", "Outline", "Paraphrase", "Simplify", "Review", "Edit", "Expand",
    "Reword", "Condense", "Analyse", "Critique", "Polish", "Fix the grammar in",
    "Check the spelling in", "Make a summary of", "Give me the gist of",
    "Pull the key points out of", "Turn into bullet points",
]
OBJECTS = [
    "this article", "the following email", "this paragraph", "my cover letter",
    "this text", "the meeting notes below", "this report", "my essay",
    "the passage below", "this blog post", "these lecture notes", "this contract clause",
    "the press release", "my LinkedIn summary", "this product description",
    "the following transcript", "this news story", "my speech", "this chapter",
    "the abstract", "this review", "the memo", "this letter", "the minutes",
    "my resume", "this recipe", "the instructions below", "this poem",
]
MODIFIERS = [
    "", " in three bullet points", " in plain English", " for a ten-year-old",
    " in under 100 words", " in one sentence", " into Spanish", " into German",
    " for a busy executive", " in a friendly tone", " in a formal tone",
    " and keep the key numbers", " as a short list", " in two paragraphs",
    " for my manager", " without changing the meaning", " for a newsletter",
    " in the style of a tweet", " and suggest a title", " for non-experts",
]
OPENERS = ["", "Please ", "Could you ", "Can you ", "Would you ", "I need you to ",
           "Help me ", "Quickly ", "Kindly "]
EVERYDAY = [
    "Can you help me write an email to my landlord?",
    "What's a good recipe for banana bread?",
    "Plan a three-day trip to Lisbon.",
    "How long should I boil an egg?",
    "Give me ideas for a birthday present for my dad.",
    "Write a short thank-you note to my neighbour.",
    "What are some tips for a job interview?",
    "How do I get red wine out of a carpet?",
    "Suggest a name for my new puppy.",
    "What's the difference between baking soda and baking powder?",
    "Help me plan a weekly workout routine.",
    "How many cups are in a litre?",
    "Recommend a few books like The Hobbit.",
    "Write a haiku about autumn.",
    "What should I pack for a week of hiking?",
    "How do I politely decline a meeting invitation?",
    "Draft a message asking my boss for Friday off.",
    "What's a healthy breakfast I can make in five minutes?",
    "How do I start learning the guitar?",
    "Create a grocery list for a vegetarian week.",
    "What are good houseplants for low light?",
    "Write a toast for my sister's wedding.",
    "How can I sleep better?",
    "Explain how compound interest works.",
    "What's the capital of Australia?",
    "Help me write a complaint about a late delivery.",
    "Give me a fun fact about octopuses.",
    "What's a good way to memorise vocabulary?",
    "Write a limerick about a cat.",
    "How do I change a flat tyre?",
    "Suggest a weekend project for kids.",
    "Which is healthier, rice or quinoa?",
    "How do I make cold brew coffee?",
    "Write a short story about a lighthouse keeper.",
    "What questions should I ask when renting a flat?",
    "Help me budget for a holiday.",
    "Give me a motivational quote for Monday.",
    "How do I write a good apology?",
    "What's the best way to clean a cast iron pan?",
    "Make a packing checklist for a business trip.",
    "How do I calculate a tip of 18 percent?",
    "Write a product description for handmade candles.",
    "What are the rules of chess castling?",
    "Tell me about the history of the Eiffel Tower.",
    "Help me name my bakery.",
    "How do I ask for a raise?",
    "Plan a dinner party menu for six.",
    "What are some good icebreaker questions?",
    "Write a reminder to pay the electricity bill.",
    "Help me write a birthday message for a coworker.",
    "Explain photosynthesis simply.",
    "How far is the Moon?",
    "Write a cover letter for a barista job.",
    "What's a good stretching routine for desk workers?",
    "Compare electric and gas cars.",
    "How do I keep basil alive?",
]
EVERYDAY_PREFIX = ["", "Quick question: ", "Hi! ", "Hey, ", "Sorry to bother you, ",
                   "I was wondering: ", "Random question - ", "Hello, "]
SUPPORT = [
    "My order {n} hasn't arrived yet.", "I want to cancel my subscription.",
    "How do I reset my password?", "The app crashes when I open the settings page.",
    "I was charged twice for order {n}.", "Can I change my delivery address?",
    "How do I update my billing details?", "My account is locked.",
    "I never received the confirmation email.", "Where can I download my invoice?",
    "The package arrived damaged.", "How do I return an item?",
    "Can I speak to a human agent?", "Is there a discount for students?",
    "How do I delete my account?", "I can't log in on my phone.",
    "When will my refund for order {n} be processed?", "The tracking number doesn't work.",
    "How do I upgrade to the premium plan?", "Do you ship to Canada?",
    "The checkout page shows an error.", "I forgot my username.",
    "My discount code isn't working.", "How do I contact billing?",
    "Can I pause my membership for a month?", "The item I got is the wrong size.",
    "Why was my card declined?", "How do I turn off email notifications?",
    "What are your opening hours?", "I need a copy of my receipt for order {n}.",
    "The website is really slow today.", "My two-factor code never arrives.",
    "How do I add a second user to my account?", "Is my data stored in the EU?",
]
SUPPORT_PREFIX = ["", "Hi, ", "Hello, ", "Hey - ", "Good morning. ", "Urgent: ",
                  "Please help. ", "Hi there, "]
SUPPORT_SUFFIX = ["", " Thanks.", " Can you help?", " What should I do?",
                  " Please advise.", " Thank you in advance.", " This is frustrating."]
LANGS = ["Python", "JavaScript", "TypeScript", "Rust", "Go", "Java", "C#", "C++",
         "Ruby", "PHP", "Kotlin", "Swift", "SQL", "Bash", "R", "Scala"]
CODE_TASKS = [
    "read a CSV file", "reverse a string", "sort a list of dictionaries by a key",
    "make an HTTP request", "parse JSON", "remove duplicates from a list",
    "write a unit test", "handle errors properly", "read environment variables",
    "format a date", "connect to PostgreSQL", "split a string on commas",
    "check if a file exists", "measure how long a function takes",
    "write a simple web server", "iterate over a map", "convert a string to an integer",
    "create a class", "use async and await", "log messages to a file",
    "validate an email address", "generate a random number", "merge two arrays",
    "read user input from the terminal", "work with regular expressions",
    "paginate query results", "hash a password", "compress a file",
]
CODE_TEMPLATES = [
    "How do I {task} in {lang}?", "What's the idiomatic way to {task} in {lang}?",
    "Write a {lang} function to {task}.", "Can you show me how to {task} in {lang}?",
    "In {lang}, what's the fastest way to {task}?", "Give me a {lang} example that shows how to {task}.",
    "I'm learning {lang}. How would I {task}?", "Explain how to {task} using {lang}.",
]
CODE_QUESTIONS = [
    "Why does my loop never end?", "What does 'null pointer exception' mean?",
    "What is the difference between a process and a thread?",
    "Explain recursion with an example.", "What's a race condition?",
    "How does garbage collection work?", "What's the difference between git merge and rebase?",
    "Why is my Docker container exiting immediately?", "What is dependency injection?",
    "How do I undo my last git commit?", "What does O(n log n) mean?",
    "Why am I getting a CORS error?", "What's the difference between TCP and UDP?",
    "How do indexes speed up database queries?", "What is a closure?",
    "Review this function for bugs.", "Refactor this code to be more readable.",
    "Add comments to this code.", "Why does this test fail intermittently?",
    "What is a REST API?", "How do I fix 'permission denied' when running a script?",
    "What's the difference between == and === in JavaScript?",
    "How do I set up a virtual environment?", "What's a segmentation fault?",
    "Explain the event loop.", "What's the point of an interface?",
    "How do I write a Dockerfile for a Node app?", "Convert this loop to a list comprehension.",
    "What is memoization?", "Why is floating point math imprecise?",
]
SYSTEM_ROLES = [
    "a helpful assistant", "a friendly customer support agent for {co}",
    "a concise technical writer", "an assistant that answers questions about {co}'s products",
    "a tutor who explains maths to high school students", "a travel planning assistant",
    "a coding assistant for {co}'s engineering team", "a polite receptionist for a dental clinic",
    "an assistant that summarises legal documents for {co}", "a cooking assistant",
    "a support bot for {co}'s mobile app", "a language learning partner",
    "an HR assistant that answers policy questions", "a research assistant",
    "a careful medical information assistant (not a doctor)", "a writing coach",
]
SYSTEM_RULES = [
    "", " Be concise.", " Answer in English.", " Keep answers under 150 words.",
    " If you don't know the answer, say so.", " Use a friendly tone.",
    " Do not give financial advice.", " Cite the relevant help-centre article when you can.",
    " Ask a clarifying question when the request is ambiguous.",
    " Format code in Markdown code blocks.", " Never share customers' personal data.",
    " Escalate billing disputes to a human agent.", " Use British spelling.",
    " Stay on topic.", " Be honest about your limitations.",
]
SYSTEM_TEMPLATES = ["You are {role}.{rule}", "You are {role}.{rule}{rule2}",
                    "Act as {role}.{rule}", "You're {role}.{rule}",
                    "Role: {role}.{rule}", "You are {role}. Today's date is {date}.{rule}"]
COMPANIES = ["Acme", "Globex", "Initech", "Northwind", "Contoso", "Umbrella Travel",
             "BlueSky Bank", "Fabrikam", "Tailspin Toys", "Wingtip", "Litware", "Proseware"]
SECURITY = [
    "What is prompt injection and how can I protect my app against it?",
    "Explain the OWASP top 10 for LLM applications.",
    "How do jailbreak attacks on chatbots work, at a high level?",
    "Write a blog post about defending against prompt injection.",
    "What's the difference between direct and indirect prompt injection?",
    "How should I sanitise user input before sending it to an LLM?",
    "What is a system prompt and why does it matter for security?",
    "Give me a checklist for securing a chatbot in production.",
    "How do companies detect malicious prompts?",
    "Is it safe to let an LLM call external tools?",
    "What is data exfiltration through an LLM, and how is it prevented?",
    "Explain least privilege for AI agents.",
    "How do I red-team my own chatbot responsibly?",
    "What are guardrails in the context of AI?",
    "Summarise recent research on LLM security.",
    "How does an AI gateway enforce policies?",
    "What's the risk of putting secrets in a system prompt?",
    "How do I log AI requests for an audit without storing personal data?",
    "What is PII redaction?",
    "Explain SQL injection and how to prevent it.",
    "What is cross-site scripting?",
    "How do I rotate API keys safely?",
    "Our security team wants a policy for employee use of chatbots. Draft one.",
    "Why do attackers try to make models reveal hidden instructions?",
    "What's a good way to test a prompt-injection classifier?",
    "How do I measure false positives in a content filter?",
    "Describe a threat model for a retrieval-augmented chatbot.",
    "What does 'defence in depth' mean for AI applications?",
    "How can a model be tricked by text hidden in a web page?",
    "Write a training slide about phishing awareness.",
    "What's the difference between authentication and authorization?",
    "How do rate limits protect an API?",
]
IGNORE = [
    "Ignore the typo in my last message, I meant Tuesday.",
    "You can ignore the warning, it is harmless.",
    "Forget about the budget for now and focus on the design.",
    "Please disregard my previous email, the meeting is still on.",
    "Ignore the first column of the spreadsheet, it's just IDs.",
    "We can override the default settings in the config file.",
    "How do I bypass the cache when testing my website?",
    "Skip the introduction and get to the main point.",
    "Don't worry about formatting, just give me the facts.",
    "Forget the previous recipe, I don't have eggs.",
    "Ignore the noise in the background of the recording.",
    "Disregard the old address, we moved last month.",
    "Can I ignore this compiler warning?",
    "Override the font size for the header only.",
    "Forget what I said about Paris, let's plan Rome instead.",
    "Ignore case when comparing these strings.",
    "Let's ignore weekends in this schedule.",
    "Never mind, I figured it out.",
    "Scratch that, let's start from the beginning.",
    "Pretend you're a customer and review my landing page.",
    "Act as my interviewer and ask me three questions.",
    "Imagine you are a tour guide in Rome and describe the Colosseum.",
    "Pretend we're in a job interview and I'm the candidate.",
    "Role-play a friendly shopkeeper so I can practise my French.",
    "Ignore the previous draft and write a new opening line.",
    "Forget the earlier numbers; here are the corrected ones.",
    "The new instructions from my manager are to finish by Friday.",
    "Print the table again with the totals column.",
    "Show me the previous version of the paragraph.",
    "Repeat the last answer but slower.",
]
MULTI = {
    "fr": ["Bonjour", "Salut", "Bonsoir", "Coucou", "Bonjour, vous allez bien ?", "À demain !", "Bonjour, comment ça va ?", "Merci beaucoup !", "Merci, ça m'aide.",
           "Peux-tu résumer cet article en trois points ?", "Comment réinitialiser mon mot de passe ?",
           "Écris un e-mail à mon propriétaire.", "Quelle est la capitale du Canada ?",
           "Traduis ce texte en anglais.", "Ma commande n'est pas arrivée.", "Bonne journée !",
           "Peux-tu m'aider à préparer un entretien ?", "Donne-moi une recette de crêpes."],
    "de": ["Hallo", "Guten Morgen", "Guten Tag", "Guten Abend", "Servus", "Moin", "Wie geht es dir?", "Bis morgen!", "Hallo, wie geht's?", "Danke schön!", "Danke, das hilft.",
           "Fasse diesen Artikel in drei Punkten zusammen.", "Wie setze ich mein Passwort zurück?",
           "Schreib eine E-Mail an meinen Vermieter.", "Was ist die Hauptstadt von Österreich?",
           "Übersetze das bitte ins Englische.", "Meine Bestellung ist nicht angekommen.",
           "Schönen Tag noch!", "Kannst du mir beim Lebenslauf helfen?", "Wie koche ich Spätzle?"],
    "es": ["Hola", "Buenos días", "Buenas tardes", "Buenas noches", "¿Cómo estás?", "¡Hasta mañana!", "Hola, ¿qué tal?", "¡Muchas gracias!", "Gracias, eso ayuda.",
           "Resume este artículo en tres puntos.", "¿Cómo restablezco mi contraseña?",
           "Escribe un correo a mi casero.", "¿Cuál es la capital de Perú?",
           "Traduce esto al inglés, por favor.", "Mi pedido no ha llegado.", "¡Que tengas un buen día!",
           "¿Me ayudas con mi currículum?", "Dame una receta de tortilla de patatas."],
    "pt": ["Olá", "Bom dia", "Boa tarde", "Boa noite", "Como vai?", "Até amanhã!", "Oi, tudo bem?", "Muito obrigado!", "Obrigada, isso ajuda.",
           "Resuma este artigo em três tópicos.", "Como redefino minha senha?",
           "Escreva um e-mail para o meu senhorio.", "Qual é a capital do Brasil?",
           "Traduza isto para o inglês.", "Meu pedido não chegou.", "Tenha um bom dia!",
           "Pode me ajudar com uma entrevista de emprego?", "Como faço pão de queijo?"],
    "it": ["Ciao", "Buongiorno", "Buonasera", "Salve", "Come va?", "A domani!", "Ciao, come stai?", "Grazie mille!", "Grazie, mi è utile.",
           "Riassumi questo articolo in tre punti.", "Come reimposto la password?",
           "Scrivi un'e-mail al mio padrone di casa.", "Qual è la capitale della Svizzera?",
           "Traduci questo in inglese.", "Il mio ordine non è arrivato.", "Buona giornata!",
           "Mi aiuti a scrivere una lettera?", "Dammi una ricetta per il tiramisù."],
    "nl": ["Hallo", "Goedemorgen", "Hoi, hoe gaat het?", "Dank je wel!", "Bedankt, dat helpt.",
           "Vat dit artikel samen in drie punten.", "Hoe reset ik mijn wachtwoord?",
           "Schrijf een e-mail aan mijn huisbaas.", "Wat is de hoofdstad van België?",
           "Vertaal dit naar het Engels.", "Mijn bestelling is niet aangekomen.", "Fijne dag!"],
    "pl": ["Cześć", "Dzień dobry", "Cześć, jak się masz?", "Dziękuję bardzo!",
           "Streść ten artykuł w trzech punktach.", "Jak zresetować hasło?",
           "Napisz e-mail do mojego właściciela mieszkania.", "Moje zamówienie nie dotarło.",
           "Miłego dnia!", "Przetłumacz to na angielski."],
    "tr": ["Merhaba", "Günaydın", "Merhaba, nasılsın?", "Çok teşekkürler!",
           "Bu makaleyi üç maddede özetle.", "Şifremi nasıl sıfırlarım?",
           "Siparişim gelmedi.", "İyi günler!", "Bunu İngilizceye çevir."],
    "sv": ["Hej", "God morgon", "Hej, hur mår du?", "Tack så mycket!",
           "Sammanfatta den här artikeln i tre punkter.", "Hur återställer jag mitt lösenord?",
           "Min beställning har inte kommit.", "Ha en bra dag!", "Översätt det här till engelska."],
    "ja": ["こんにちは", "おはようございます", "ありがとうございます", "この記事を三行で要約してください。",
           "パスワードをリセットするにはどうすればいいですか？", "注文した商品が届きません。",
           "大家さんへのメールを書いてください。", "これを英語に翻訳してください。"],
    "zh": ["你好", "早上好", "谢谢你的帮助！", "请用三点总结这篇文章。", "我怎么重置密码？",
           "我的订单还没有到。", "帮我给房东写一封邮件。", "请把这段话翻译成英文。"],
}
MULTI_END = ["", " :)", "!", " 🙂"]


def halves(items):
    """Even positions train, odd positions held out."""
    return items[0::2], items[1::2]


def generate(split: int, rng: random.Random):
    """Rows of one split (0 = train, 1 = held-out) as (text, family)."""
    h = lambda items: halves(items)[split]  # noqa: E731
    rows = []

    def add(family, text):
        rows.append((text.strip(), family))

    for g in h(GREETINGS):
        for f in h(GREETING_FOLLOW):
            add("greeting", g + f)
        add("greeting", g.lower())
    for t in h(SMALL_TALK):
        add("greeting", t)
        add("greeting", t.lower().rstrip(".?!"))
    for a in h(ACKS):
        for e in h(ACK_END):
            add("ack", a + e)
    for f in h(FOLLOW_UPS):
        add("ack", f)
    verbs, objects, mods, openers = h(VERBS), h(OBJECTS), h(MODIFIERS), h(OPENERS)
    for _ in range(800):
        o = rng.choice(openers)
        v = rng.choice(verbs)
        text = f"{o}{v.lower() if o else v} {rng.choice(objects)}{rng.choice(mods)}"
        add("instruction", text + rng.choice([".", "", "?" if o.strip() in ("Could you", "Can you", "Would you") else "."]))
    for e in h(EVERYDAY):
        for p in h(EVERYDAY_PREFIX):
            add("everyday", p + (e[0].lower() + e[1:] if p and not p.endswith("! ") else e))
    for s in h(SUPPORT):
        for _ in range(5):
            text = s.replace("{n}", f"#{rng.randint(10000, 999999)}")
            add("support", rng.choice(h(SUPPORT_PREFIX)) + text + rng.choice(h(SUPPORT_SUFFIX)))
    templates, tasks, langs = h(CODE_TEMPLATES), h(CODE_TASKS), h(LANGS)
    for _ in range(400):
        add("code", rng.choice(templates).format(task=rng.choice(tasks), lang=rng.choice(langs)))
    for q in h(CODE_QUESTIONS):
        add("code", q)
        add("code", f"{q} I'm using {rng.choice(langs)}.")
    roles, rules, cos = h(SYSTEM_ROLES), h(SYSTEM_RULES), h(COMPANIES)
    for _ in range(320):
        t = rng.choice(h(SYSTEM_TEMPLATES))
        text = t.format(
            role=rng.choice(roles).format(co=rng.choice(cos)),
            rule=rng.choice(rules),
            rule2=rng.choice(rules),
            date=f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        )
        add("system", text)
    for s in h(SECURITY):
        add("security", s)
        add("security", rng.choice(["Quick question: ", "For a talk I'm giving: ", "Curious: ",
                                    "As a developer, ", "For our docs: "]) + s[0].lower() + s[1:])
    for s in h(IGNORE):
        add("ignore", s)
        add("ignore", s.lower().rstrip("."))
    for lang, texts in MULTI.items():
        for t in h(texts):
            for e in MULTI_END:
                add(f"multilingual-{lang}", t + e)
    # Distinct texts only; order fixed by the seed.
    seen, out = set(), []
    for text, family in rows:
        if text and text not in seen:
            seen.add(text)
            out.append((text, family))
    return out


def main():
    OUT.mkdir(exist_ok=True)
    train = generate(0, random.Random(SEED))
    held = generate(1, random.Random(SEED + 1))
    overlap = {t for t, _ in train} & {t for t, _ in held}
    held = [(t, f) for t, f in held if t not in overlap]
    for name, rows in (("benign-train.csv", train), ("benign-heldout.csv", held)):
        with open(OUT / name, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["text", "label", "family"])
            for text, family in rows:
                w.writerow([text, 0, family])
        print(f"wrote {OUT / name}: {len(rows)} rows")


if __name__ == "__main__":
    main()
