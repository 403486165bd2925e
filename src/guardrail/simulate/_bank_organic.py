"""Everyday questions of honest users, composed from parts so a large population rarely repeats itself.

Each generator picks a topic family, a phrasing for it and fills its slots; a person's own framing
(greetings, context, style of asking) is added around it. Several languages are covered, roughly in the
proportions a global chat service sees.
"""

# ruff: noqa: E501, RUF001  (prose and multilingual text data: long sentences and full-width punctuation)

from __future__ import annotations

import random
from collections.abc import Callable

C = random.Random.choice

LANGS = (
    "Python", "JavaScript", "TypeScript", "Go", "Rust", "Java", "C#", "C++", "Kotlin", "Swift", "Ruby",
    "PHP", "bash", "SQL", "R", "Scala", "Elixir", "Haskell", "Lua", "Dart",
)  # fmt: skip
CODE_TASKS = (
    "read a CSV file and skip the header", "parse a JSON response", "reverse a string", "sort a dictionary by value",
    "make an HTTP request with a timeout", "retry a request with exponential backoff", "read a file line by line",
    "merge two sorted lists", "remove duplicates from a list but keep the order", "format a date as ISO 8601",
    "convert a timestamp to local time", "validate an email address", "generate a random password",
    "run two tasks concurrently", "write a unit test for a function that calls an API", "mock the current time",
    "flatten a nested list", "count word frequencies in a text file", "send an email with an attachment",
    "connect to PostgreSQL", "paginate results from an API", "stream a large file without loading it into memory",
    "compress a folder into a zip", "debounce a function", "deep copy an object", "compare two floats safely",
    "hash a password", "upload a file to S3", "read environment variables with defaults", "parse command line arguments",
    "set up logging to a file and stdout", "schedule a job every hour", "handle SIGTERM gracefully",
    "resize an image", "split a list into chunks", "find the most common element", "implement a simple cache",
    "serialize a class to JSON", "open a websocket connection", "check if a port is open", "parse an XML file",
)  # fmt: skip
ERRORS = (
    "TypeError: 'NoneType' object is not subscriptable", "KeyError: 'id'", "segmentation fault (core dumped)",
    "Cannot read properties of undefined (reading 'map')", "ModuleNotFoundError: No module named 'cv2'",
    "error[E0502]: cannot borrow `v` as mutable because it is also borrowed as immutable",
    "java.lang.NullPointerException", "fatal: refusing to merge unrelated histories", "CORS policy: No 'Access-Control-Allow-Origin' header",
    "ECONNREFUSED 127.0.0.1:5432", "RecursionError: maximum recursion depth exceeded", "permission denied (publickey)",
    "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff", "Deadlock found when trying to get lock",
    "panic: assignment to entry in nil map", "ValueError: could not convert string to float: ''",
    "npm ERR! ERESOLVE unable to resolve dependency tree", "OOMKilled", "SSL: CERTIFICATE_VERIFY_FAILED",
    "IndexError: list index out of range", "undefined reference to `main'", "Hydration failed because the initial UI does not match",
)  # fmt: skip
DOING = (
    "run my script", "deploy to Heroku", "start the container", "import pandas", "call the endpoint from React",
    "push to GitHub", "build the project", "run the migrations", "loop over the results", "start the dev server",
    "run the tests in CI", "open the file on Windows", "parse the user input",
)  # fmt: skip
DOCS = ("email", "cover letter", "LinkedIn post", "speech", "thank-you note", "product description", "toast",
        "complaint letter", "apology message", "newsletter intro", "short story", "poem", "blog outline",
        "wedding vow", "resignation letter", "birthday message", "tweet thread", "press release")  # fmt: skip
TONES = ("friendly", "formal", "funny", "heartfelt", "concise", "persuasive", "professional but warm", "casual",
         "enthusiastic", "polite but firm")  # fmt: skip
RECIPIENTS = (
    "my landlord",
    "my team",
    "a hiring manager",
    "my neighbour",
    "our customers",
    "my professor",
    "my grandmother",
    "a client who paid late",
    "the city council",
    "my best friend",
    "new subscribers",
)
ABOUT = (
    "a broken heater",
    "the project delay",
    "a job opening in data analysis",
    "our new pricing",
    "moving abroad",
    "a noisy party last weekend",
    "my retirement",
    "a missed deadline",
    "the office move",
    "a product launch",
    "volunteering at the food bank",
    "a refund request",
    "switching to a four-day week",
)
INGREDIENTS = (
    "chickpeas",
    "spinach",
    "leftover rice",
    "eggs",
    "feta",
    "sweet potatoes",
    "tofu",
    "chicken thighs",
    "canned tomatoes",
    "zucchini",
    "lentils",
    "ground beef",
    "mushrooms",
    "coconut milk",
    "salmon",
    "broccoli",
    "black beans",
    "halloumi",
    "potatoes",
    "kimchi",
    "ricotta",
    "bell peppers",
    "shrimp",
)
CITIES = ("Lisbon", "Kyoto", "Mexico City", "Edinburgh", "Hanoi", "Cape Town", "Vancouver", "Istanbul",
          "Buenos Aires", "Prague", "Seoul", "Marrakech", "Copenhagen", "Bali", "New Orleans", "Reykjavik",
          "Singapore", "Oaxaca", "Tbilisi", "Sicily", "Montreal", "Melbourne")  # fmt: skip
TRAVELLERS = (
    "a family with two kids",
    "a couple",
    "a solo traveller",
    "three friends in their twenties",
    "my parents in their seventies",
    "a wheelchair user",
    "someone who doesn't drink",
)
BUDGETS = ("tight", "moderate", "generous", "backpacker", "mid-range")
CONCEPTS = (
    ("a Roth IRA", "a traditional IRA"), ("an ETF", "a mutual fund"), ("TCP", "UDP"), ("RAM", "storage"),
    ("weather", "climate"), ("a virus", "a bacterium"), ("affect", "effect"), ("mitosis", "meiosis"),
    ("a fixed-rate mortgage", "an adjustable-rate mortgage"), ("Docker", "a virtual machine"),
    ("baking soda", "baking powder"), ("machine learning", "statistics"), ("a LLC", "a sole proprietorship"),
    ("stocks", "bonds"), ("HIIT", "steady-state cardio"), ("a debit card", "a credit card"),
    ("socialism", "communism"), ("latency", "throughput"), ("an index fund", "a hedge fund"),
    ("speed", "velocity"), ("REST", "GraphQL"), ("a cold", "the flu"), ("Git merge", "Git rebase"),
)  # fmt: skip
WHY = (
    "the sky is blue", "ice floats", "cats purr", "planes leave contrails", "bread goes stale",
    "we get goosebumps", "the moon looks bigger near the horizon", "onions make you cry", "batteries lose capacity",
    "my sourdough is so dense", "my phone gets hot when charging", "leaves change colour in autumn",
    "inflation happens", "the ocean is salty", "we dream", "coffee makes me sleepy sometimes",
    "my tomato plants have yellow leaves", "the stock market dropped today", "airplane food tastes bland",
    "my wifi is slow in the evening", "my dog eats grass", "hot water sometimes freezes faster",
)  # fmt: skip
HISTORY = (
    "the fall of the Western Roman Empire", "the First World War", "the 2008 financial crisis",
    "the collapse of the Bronze Age", "the French Revolution", "the Meiji Restoration", "the Dust Bowl",
    "the partition of India", "the end of the Cold War", "the Great Fire of London", "the Protestant Reformation",
    "the Opium Wars", "the rise of the Mongol Empire", "the Cuban Missile Crisis", "the Irish famine",
)  # fmt: skip
FITNESS = (
    "run every day",
    "lift weights twice a week",
    "do intermittent fasting",
    "swim after eating",
    "stretch before running",
    "drink coffee before a workout",
    "train with sore muscles",
    "walk 10k steps",
)
CONDITIONS = ("have a bad knee", "am over 50", "just started", "have asthma", "work night shifts", "am pregnant",
              "have low blood pressure", "sleep only six hours")  # fmt: skip
ROLES = (
    "data analyst",
    "backend engineer",
    "product manager",
    "nurse",
    "UX designer",
    "teacher",
    "sales",
    "accountant",
    "mechanical engineer",
    "barista",
    "marketing",
    "site reliability engineer",
)
COMPANY_KINDS = ("startup", "bank", "hospital", "big tech company", "non-profit", "consulting firm", "school")
SKILLS = (
    "Excel pivot tables",
    "public speaking",
    "touch typing",
    "Spanish",
    "the guitar",
    "chess openings",
    "watercolor painting",
    "SQL joins",
    "negotiating salary",
    "sourdough baking",
    "video editing",
    "statistics for A/B tests",
    "Kubernetes",
    "drawing hands",
    "meditation",
    "bookkeeping",
)
HOUSE = (
    "a leaking tap",
    "a squeaky door",
    "mould in the bathroom",
    "a tripped breaker",
    "a slow drain",
    "drafty windows",
    "a running toilet",
    "peeling paint",
    "a wobbly table",
    "a clogged dishwasher",
)
PETS = (
    "my cat keeps scratching the sofa",
    "my puppy cries at night",
    "my rabbit stopped eating",
    "my dog pulls on the leash",
    "my parrot plucks its feathers",
    "my goldfish is floating sideways",
)
BOOKS = (
    "1984",
    "Pride and Prejudice",
    "The Great Gatsby",
    "Crime and Punishment",
    "Sapiens",
    "Dune",
    "Beloved",
    "One Hundred Years of Solitude",
    "The Road",
    "Things Fall Apart",
    "Moby-Dick",
    "Hamlet",
)
PREFIXES = (
    "",
    "",
    "",
    "",
    "hey, ",
    "Hi! ",
    "quick question: ",
    "Can you help me? ",
    "ok so ",
    "Hello. ",
    "I have a question. ",
    "help pls ",
    "Serious question: ",
    "Sorry if this is dumb but ",
)
SUFFIXES = (
    "",
    "",
    "",
    "",
    " Thanks!",
    " thx",
    " Keep it short.",
    " Explain like I'm five.",
    " Be detailed.",
    " Give me a few options.",
    " Use bullet points.",
    " Please explain step by step.",
    " Walk me through it step by step.",
    " What do you think?",
    " Cite sources if you can.",
    " :)",
)
FIRST = (
    "Alice",
    "Bruno",
    "Chen",
    "Dana",
    "Emeka",
    "Fatima",
    "Goran",
    "Hana",
    "Ivan",
    "Jasmin",
    "Kofi",
    "Lena",
    "Mateo",
    "Noor",
    "Olga",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Viktor",
    "Wen",
)


def _code(rng: random.Random) -> str:
    lang = C(rng, LANGS)
    r = rng.random()
    if r < 0.45:
        return C(
            rng,
            (
                f"How do I {C(rng, CODE_TASKS)} in {lang}?",
                f"What's the idiomatic way to {C(rng, CODE_TASKS)} in {lang}?",
                f"{lang}: {C(rng, CODE_TASKS)}. Show me a short example.",
                f"best way to {C(rng, CODE_TASKS)} {lang}",
            ),
        )
    if r < 0.8:
        return f"I'm getting `{C(rng, ERRORS)}` when I try to {C(rng, DOING)}. " + C(
            rng,
            (
                "What am I doing wrong?",
                "Any idea?",
                "How do I fix this?",
                "It worked yesterday.",
                f"I'm using {lang} on {C(rng, ('Windows', 'a Mac', 'Ubuntu', 'WSL'))}.",
            ),
        )
    var = C(rng, ("items", "data", "rows", "users", "xs", "result", "values"))
    snippet = C(
        rng,
        (
            f"for i in range(len({var})):\n    if {var}[i] == target:\n        return i",
            f"const {var} = await fetch(url).then(r => r.json());\n{var}.forEach(x => console.log(x.name));",
            f"SELECT * FROM orders o JOIN {var} u ON u.id = o.user_id WHERE o.created_at > NOW() - INTERVAL '7 days';",
            f'fn main() {{\n    let {var} = vec![1, 2, 3];\n    let first = &{var}[0];\n    {var}.push(4);\n    println!("{{}}", first);\n}}',
            f"def total({var}):\n    s = 0\n    for x in {var}:\n        s += x.price * x.qty\n    return s",
        ),
    )
    return (
        C(
            rng,
            (
                "Can you review this code?",
                "Why is this slow?",
                "What does this do?",
                "Is there a bug here?",
                "How can I make this more readable?",
                "Can you add comments to this?",
            ),
        )
        + f"\n\n```\n{snippet}\n```"
    )


def _writing(rng: random.Random) -> str:
    return C(
        rng,
        (
            f"Write a {C(rng, TONES)} {C(rng, DOCS)} to {C(rng, RECIPIENTS)} about {C(rng, ABOUT)}.",
            f"Can you help me draft a {C(rng, DOCS)} about {C(rng, ABOUT)}? Make it {C(rng, TONES)}.",
            f'Rewrite this to sound more {C(rng, TONES)}: "Hi, just following up on {C(rng, ABOUT)}, let me know."',
            f"I need a {C(rng, DOCS)} for {C(rng, RECIPIENTS)}, around {rng.choice((50, 100, 150, 200, 300))} words, {C(rng, TONES)} tone.",
            f"Give me 5 title ideas for a {C(rng, DOCS)} about {C(rng, ABOUT)}.",
        ),
    )


def _life(rng: random.Random) -> str:
    a, b = rng.sample(INGREDIENTS, 2)
    x, y = C(rng, CONCEPTS)
    return C(
        rng,
        (
            f"What can I cook with {a}, {b} and {C(rng, INGREDIENTS)}?",
            f"Quick dinner idea with {a} and {b}? I have 20 minutes.",
            f"Plan a {rng.randint(2, 10)}-day trip to {C(rng, CITIES)} for {C(rng, TRAVELLERS)} on a {C(rng, BUDGETS)} budget.",
            f"What should I not miss in {C(rng, CITIES)}?",
            f"Is {C(rng, CITIES)} worth visiting in {C(rng, ('January', 'April', 'July', 'October'))}?",
            f"What's the difference between {x} and {y}?",
            f"{x} vs {y}, which one is better for me?",
            f"Why do {C(rng, WHY)}?".replace("Why do the", "Why does the").replace("Why do my", "Why is my"),
            f"What caused {C(rng, HISTORY)}?",
            f"Give me a short summary of {C(rng, HISTORY)}.",
            f"Is it okay to {C(rng, FITNESS)} if I {C(rng, CONDITIONS)}?",
            f"How should I prepare for a {C(rng, ROLES)} interview at a {C(rng, COMPANY_KINDS)}?",
            f"How long does it take to get decent at {C(rng, SKILLS)}? Suggest a plan.",
            f"How do I fix {C(rng, HOUSE)}?",
            f"{C(rng, PETS)}, what should I do?",
            f"What are the main themes of {C(rng, BOOKS)}?",
            f"I'm writing an essay on {C(rng, BOOKS)}. Give me a thesis idea.",
            f"Recommend books like {C(rng, BOOKS)}.",
            f"My friend {C(rng, FIRST)} says {x} and {y} are the same thing. Who's right?",
        ),
    )


def _math(rng: random.Random) -> str:
    a, b, c = rng.randint(2, 19), rng.randint(1, 60), rng.randint(20, 300)
    return C(
        rng,
        (
            f"Solve for x: {a}x + {b} = {c}",
            f"what is {rng.randint(12, 999)} * {rng.randint(12, 999)}",
            f"What's the derivative of x^{a} * sin(x)?",
            f"integrate {a}x^2 + {b}x dx",
            f"If I invest ${c * 100} at {a}% a year, how much will I have in {rng.randint(3, 30)} years?",
            f"Convert {c} {C(rng, ('km', 'miles', 'pounds', 'kg', 'Fahrenheit', 'cups'))} to "
            f"{C(rng, ('miles', 'km', 'kg', 'pounds', 'Celsius', 'ml'))}",
            f"What's {a}% of {c}?",
            f"Is {rng.randint(1000, 99999)} a prime number?",
            f"A recipe serves {a} people; I need it for {a + rng.randint(1, 9)}. How much is {b} g of flour then?",
            f"My homework: a train leaves at {rng.randint(1, 11)}:00 going {c // 3} km/h. When does it cover {c} km?",
        ),
    )


def summary(rng: random.Random) -> str:
    n1, n2 = C(rng, FIRST), C(rng, FIRST)
    body = " ".join(
        rng.sample(
            (
                f"{n1} opened the meeting by reviewing last quarter's numbers.",
                "Revenue was slightly below target.",
                f"{n2} raised concerns about the hiring freeze.",
                "The team agreed to revisit the roadmap in two weeks.",
                "Customer churn improved after the onboarding changes.",
                "Several bugs in the billing flow are still open.",
                "Marketing wants a bigger budget for the spring campaign.",
                "The office lease ends in June.",
                "There was disagreement about moving to a new CRM.",
                "Action items were assigned to each lead.",
                "The support backlog doubled during the outage.",
                "Legal needs to review the new contract template.",
            ),
            rng.randint(4, 7),
        )
    )
    return (
        C(
            rng,
            (
                "Summarize this:",
                "tl;dr please",
                "Turn these notes into action items:",
                "Make this into a short email to the team:",
                "What are the key points here?",
            ),
        )
        + "\n\n"
        + body
    )


_FOREIGN: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "es": (
        (
            "¿Me ayudas con {x}?",
            "Explícame {x} de forma sencilla.",
            "Necesito consejos sobre {x}.",
            "Escríbeme un correo formal sobre {x}.",
            "¿Qué debería saber sobre {x}?",
            "Dame ideas sobre {x}, por favor.",
        ),
        (
            "aprender inglés rápido",
            "la diferencia entre el IVA y el IRPF",
            "ahorrar para comprar un piso",
            "una cena vegetariana para seis",
            "la fotosíntesis",
            "el insomnio antes de un examen",
            "cambiar de trabajo a los 40",
            "organizar una boda pequeña",
            "los fondos indexados",
            "la Revolución Industrial",
            "mi perro que ladra de noche",
            "un viaje a Asturias",
            "la declaración de la renta",
            "cómo preparar una entrevista en inglés",
        ),
    ),
    "de": (
        (
            "Ich habe eine Frage zum Thema {x}.",
            "Erklär mir bitte kurz: {x}",
            "Hast du Tipps zum Thema {x}?",
            "Schreib mir eine kurze E-Mail zum Thema {x}.",
            "Was sollte ich über {x} wissen?",
        ),
        (
            "Steuererklärung",
            "Miete und Nebenkosten",
            "Kuchen ohne Ei",
            "Quantenmechanik",
            "Vorstellungsgespräch",
            "Heizungsausfall im Winter",
            "Python für Anfänger",
            "Umzug nach München",
            "Bahnverspätung und Entschädigung",
            "Kündigung des Handyvertrags",
            "Stress im Büro",
            "Energiewende",
            "Elternzeit",
        ),
    ),
    "fr": (
        (
            "Peux-tu m'aider avec {x} ?",
            "Explique-moi simplement {x}.",
            "J'ai une question sur {x}.",
            "Rédige un message poli à propos de {x}.",
            "Donne-moi des idées pour {x}.",
            "Que faut-il savoir sur {x} ?",
        ),
        (
            "mon CV",
            "la différence entre un PEA et une assurance-vie",
            "la Révolution française",
            "un week-end à Lyon",
            "le bac de philo",
            "mon propriétaire qui ne répond pas",
            "le pain maison",
            "le RGPD",
            "le piano à 30 ans",
            "le mal de dos après le sport",
            "la négociation de salaire",
            "le télétravail",
        ),
    ),
    "pt": (
        (
            "Pode me ajudar com {x}?",
            "Me explica {x} de um jeito simples.",
            "Tenho uma dúvida sobre {x}.",
            "Escreve uma mensagem sobre {x}.",
            "Dicas sobre {x}?",
            "O que eu preciso saber sobre {x}?",
        ),
        (
            "abrir um MEI",
            "a diferença entre CDB e Tesouro Direto",
            "o ENEM",
            "uma viagem para Salvador",
            "a crise de 1929",
            "meu gato que não quer comer",
            "troca de óleo do carro",
            "Excel avançado",
            "ansiedade antes de provas",
            "pão de queijo",
            "pedir aumento",
            "a reforma tributária",
        ),
    ),
    "zh": (
        (
            "关于{x}，能帮我一下吗？",
            "请解释一下{x}。",
            "我想了解{x}。",
            "帮我写一段关于{x}的文字。",
            "关于{x}，你有什么建议？",
            "请用简单的话说明{x}。",
        ),
        (
            "英语口语",
            "量子计算",
            "睡眠质量",
            "考研准备",
            "在上海租房",
            "用Python处理Excel文件",
            "基金和股票的区别",
            "红烧肉的做法",
            "工作总结",
            "申请美国的研究生",
            "健康减肥",
            "唐朝的历史",
        ),
    ),
    "ja": (
        (
            "{x}について教えてください。",
            "{x}のコツはありますか？",
            "{x}について簡単に説明してください。",
            "{x}に関するメールを書いてください。",
            "{x}で気をつけることは何ですか？",
        ),
        (
            "転職活動",
            "NISAとiDeCoの違い",
            "英語の勉強",
            "京都の観光プラン",
            "カレーの作り方",
            "睡眠の質",
            "Excelのマクロ",
            "確定申告",
            "猫のしつけ",
            "円安の影響",
        ),
    ),
    "ru": (
        (
            "Помоги мне с темой: {x}.",
            "Объясни, пожалуйста: {x}.",
            "Дай советы на тему: {x}.",
            "Напиши письмо на тему: {x}.",
            "Что нужно знать про {x}?",
        ),
        (
            "изучение английского",
            "ипотека или аренда",
            "рецепт борща",
            "теория относительности",
            "подготовка к собеседованию",
            "переезд в другой город",
            "настройка роутера",
            "бессонница",
        ),
    ),
    "hi": (
        (
            "{x} के बारे में समझाइए।",
            "{x} के लिए कुछ सुझाव दीजिए।",
            "मुझे {x} के बारे में जानना है।",
        ),
        (
            "सरकारी नौकरी की तैयारी",
            "म्यूचुअल फंड और एफडी",
            "वजन कम करना",
            "अंग्रेज़ी बोलना",
            "पायथन सीखना",
            "गोवा की यात्रा",
            "बच्चों की पढ़ाई",
        ),
    ),
}
_CONTEXT: dict[str, tuple[str, ...]] = {
    "es": ("Tengo {n} años.", "Vivo en Valencia.", "Es para mañana.", "Soy estudiante.", "Gracias de antemano.", "Somos {n} personas."),
    "de": ("Ich bin {n} Jahre alt.", "Es eilt ein bisschen.", "Ich wohne in Köln.", "Danke!", "Wir sind {n} Leute.", "Bin Anfänger."),
    "fr": ("J'ai {n} ans.", "C'est pour demain.", "J'habite à Lille.", "Merci d'avance !", "Nous sommes {n}.", "Je débute."),
    "pt": ("Tenho {n} anos.", "É pra amanhã.", "Moro em Recife.", "Valeu!", "Somos {n} pessoas.", "Sou iniciante."),
    "zh": ("我今年{n}岁。", "明天就要用。", "我在成都。", "谢谢！", "我们一共{n}个人。", "我是新手。"),
    "ja": ("{n}歳です。", "明日までに必要です。", "大阪に住んでいます。", "よろしくお願いします。", "初心者です。"),
    "ru": ("Мне {n} лет.", "Нужно к завтрашнему дню.", "Живу в Казани.", "Спасибо!", "Нас {n} человек."),
    "hi": ("मेरी उम्र {n} साल है।", "कल तक चाहिए।", "मैं पुणे में रहता हूँ।", "धन्यवाद!"),
}  # fmt: skip
_LANG_WEIGHTS = (("en", 0.68), ("es", 0.07), ("de", 0.04), ("fr", 0.04), ("pt", 0.05), ("zh", 0.05),
                 ("ja", 0.03), ("ru", 0.02), ("hi", 0.02))  # fmt: skip
_ENGLISH: tuple[tuple[Callable[[random.Random], str], float], ...] = (
    (_code, 0.3),
    (_writing, 0.15),
    (_life, 0.35),
    (_math, 0.12),
    (summary, 0.08),
)


def pick_language(rng: random.Random) -> str:
    """A user's main language, by a rough share of a global chat service's traffic."""
    return rng.choices([lang for lang, _ in _LANG_WEIGHTS], [w for _, w in _LANG_WEIGHTS])[0]


def organic_question(rng: random.Random, lang: str = "en", *, framing: bool = True) -> str:
    """One honest user's question in ``lang``, with that user's own framing when ``framing``."""
    if lang in _FOREIGN and rng.random() < 0.85:
        forms, fills = _FOREIGN[lang]
        text = C(rng, forms).replace("{x}", C(rng, fills))
        if rng.random() < 0.5:  # a little personal context, in the user's language
            context = C(rng, _CONTEXT[lang]).replace("{n}", str(rng.randint(2, 60)))
            text = f"{context} {text}" if rng.random() < 0.5 else f"{text} {context}"
        return text
    fns = [f for f, _ in _ENGLISH]
    question = rng.choices(fns, [w for _, w in _ENGLISH])[0](rng)
    if not framing:
        return question
    text = C(rng, PREFIXES) + question + C(rng, SUFFIXES)
    if rng.random() < 0.12:
        text = text.lower().rstrip("?.!")
    return text


def assistant_reply(rng: random.Random, question: str) -> str:
    """A plausible earlier assistant turn (multi-turn clients resend it with every request)."""
    topic = question.strip().split("\n")[0][:60]
    return " ".join(
        (
            C(
                rng,
                (
                    "Sure!",
                    "Good question.",
                    "Here's an overview.",
                    "Happy to help.",
                    "Short answer: it depends.",
                ),
            ),
            f'Regarding "{topic}":',
            C(
                rng,
                (
                    "there are a few things to consider.",
                    "the main idea is simple once you see the pattern.",
                    "here is one way to approach it.",
                    "the most common cause is a configuration issue.",
                ),
            ),
            C(
                rng,
                (
                    "First, check the basics.",
                    "1. Start small. 2. Measure. 3. Adjust.",
                    "Let me know your constraints.",
                    "Would you like an example?",
                    "I can go deeper on any of these points.",
                ),
            ),
        )
    )


_FOLLOW_ACKS = ("", "", "ok. ", "Thanks. ", "hmm ", "Great. ", "Nice, ", "wait, ", "Got it. ", "Sorry, ")
_FOLLOW_ASKS = (
    "can you make it shorter?", "what about the second option?", "why?", "give me an example.",
    "what if it doesn't work?", "can you explain that last part again?", "make it more formal.",
    "that's not quite right, the error is still there.", "now translate it into Spanish.",
    "and in Python?", "what are the downsides?", "could you put that in a table?", "more detail please",
    "now write a test for it.", "I don't have that option in my settings", "is there a cheaper way?",
    "let's go with that. next step?", "can you double-check the numbers?", "what would you do?",
    "what if I only have {n} minutes?", "make it about {n} words.", "and for {n} people?", "try again with {n} items.",
    "step {n} fails for me.", "I'm on version {n}, does that change anything?", "can you give me {n} more ideas?",
    "does this work on a phone?", "explain it like I'm new to this.", "too long, summarize in one line.",
    "how do I know it worked?", "what's the source for that?", "can you compare it with the other approach?",
)  # fmt: skip


def follow_up(rng: random.Random) -> str:
    """A user's next message in an ongoing chat."""
    ask = C(rng, _FOLLOW_ASKS).replace("{n}", str(rng.randint(2, 30)))
    text = C(rng, _FOLLOW_ACKS) + ask
    return text[0].upper() + text[1:] if rng.random() < 0.7 else text
