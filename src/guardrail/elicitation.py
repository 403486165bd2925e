# ruff: noqa: RUF001, RUF003  (multilingual vocabulary: the "ambiguous" characters are the point)
"""How strongly a prompt asks the model to write out its reasoning: one weak signal in [0, 1].

Distillation campaigns want the teacher's chain of thought, so their templates ask for it ("think step
by step", "show your reasoning", "<thinking> tags", a rubric to justify). Honest prompts ask for it
too, so the engine only uses this in aggregate (per template, per account), never to judge a request.

Design: instead of a list of English phrases, a handful of *concepts* (stepwise, show + reasoning,
chain-of-thought terms, think carefully, before the final answer, justify, in detail, rubric, explain,
why), each with a weight and a small vocabulary per language (en, zh-Hans/zh-Hant, es, fr, de, pt, ru,
ja, ko, ar, hi, it, tr, vi, id). "Show + reasoning" is a verb and a reasoning noun close together in
either order, which covers the many phrasings ("walk me through your thought process", "把推理过程写
出来", "muéstrame tu razonamiento") without enumerating them. Each concept counts once; concepts
combine by noisy-OR, ``1 - prod(1 - w)``, so the score is bounded, grows with independent evidence and
one strong cue alone already scores high.

Text is normalised with NFKC + casefold (width and case insensitive; Arabic diacritics and tatweel
dropped) and, for speed on long prompts, only its first and last ``SCAN_CHARS // 2`` characters are
read: instructions sit at the start or the end of a template. Cues are found through an index on their
first characters (``_Index``), so a kilobyte costs tens of microseconds, not the milliseconds a
thousand-way regex alternation would.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Sequence

from ._unicode import in_pieces

__all__ = ["SCAN_CHARS", "elicitation_score"]

SCAN_CHARS = 8000
"""Characters read per prompt (head and tail halves)."""

# Arabic diacritics and tatweel; the combining dot that casefold leaves on Turkish "İ".
_MARKS = re.compile("[\u064b-\u0652\u0670\u0640\u0307]")


def _norm(text: str) -> str:
    if text.isascii():
        return text.lower()
    text = in_pieces(text, _nfkc_fold)
    return _MARKS.sub("", text)


def _nfkc_fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


# Per language and concept: regex fragments, written in lower case (they are normalised like the text).
# Keys: step (explicitly stepwise), cot (chain-of-thought / reasoning-process terms), verb and noun
# (combined into "show reasoning"), think, before (reason before a final answer), justify, detail,
# rubric, explain, why. Latin-script fragments get a word boundary in front.
_LANGS: dict[str, dict[str, Sequence[str]]] = {
    "en": {
        "step": [
            r"step[\s-]*by[\s-]*step(?![\s-]*(?:guides?|instructions|tutorials?|installation|setup)\b)",
            r"one step at a time",
            r"step-?wise",
            r"show (?:all )?(?:of )?(?:your |the |each |every )?"
            r"(?:work(?:ing)?|intermediate steps|calculations)",
        ],
        "cot": [
            r"chain[\s-]*of[\s-]*thoughts?",
            r"thought process",
            r"reasoning (?:process|steps|trace|chain)",
        ],
        "verb": [
            r"show",
            r"explain",
            r"write (?:out|down)?",
            r"walk (?:me |us )?through",
            r"describe",
            r"lay out",
            r"spell out",
            r"outline",
            r"provide",
            r"give",
            r"include",
            r"present",
            r"share",
            r"articulate",
            r"document",
            r"detail",
        ],
        "noun": [
            r"reasoning",
            r"thought process",
            r"thinking",
            r"rationale",
            r"your logic",
            r"derivation",
            r"justification",
            r"chain of thought",
        ],
        "think": [
            r"let'?s think",
            r"think (?:carefully|through|it through|hard|deeply|aloud|out loud|about it|step)",
            r"reason (?:through|carefully|step|it out|about)",
            r"take a deep breath",
            r"work (?:it )?(?:out|through) (?:carefully|step)",
        ],
        "before": [
            r"before (?:answering|responding|you answer|you respond|giving|providing|stating)",
            r"before (?:the|your) final answer",
            r"then (?:give|provide|state|output|write) (?:the |your )?final answer",
            r"final answer\s*[:=]",
            r"then conclude",
            r"finally conclude",
        ],
        "justify": [
            r"justif(?:y|ies|ied|ication)",
            r"defend your (?:answer|choice|position)",
            r"support your (?:answer|choice|position)",
        ],
        "detail": [
            r"in (?:great |full )?detail",
            r"detailed",
            r"thorough(?:ly)?",
            r"elaborate",
            r"comprehensive",
        ],
        "rubric": [
            r"rubric",
            r"grading (?:criteria|scale|guide)",
            r"grade (?:the|this|each|following)",
            r"score (?:the|this|each) (?:response|answer|essay)",
            r"evaluation criteria",
        ],
        "explain": [r"explain", r"explanation"],
        "why": [r"why"],
    },
    "zh": {
        "step": [
            r"一步一步",
            r"一步步",
            r"逐步",
            r"分步",
            r"循序渐进",
            r"循序漸進",
            r"每一步",
            r"按步骤",
            r"按步驟",
        ],
        "cot": [
            r"思维链",
            r"思維鏈",
            r"推理过程",
            r"推理過程",
            r"思考过程",
            r"思考過程",
            r"解题过程",
            r"解題過程",
            r"解题步骤",
            r"解題步驟",
            r"计算过程",
            r"計算過程",
        ],
        "verb": [
            r"展示",
            r"显示",
            r"顯示",
            r"写出",
            r"寫出",
            r"给出",
            r"給出",
            r"说明",
            r"說明",
            r"解释",
            r"解釋",
            r"列出",
            r"阐述",
            r"闡述",
            r"描述",
        ],
        "noun": [r"推理", r"思路", r"推导", r"推導", r"依据", r"依據"],
        "think": [
            r"仔细思考",
            r"仔細思考",
            r"认真思考",
            r"認真思考",
            r"深入思考",
            r"想一想",
            r"一步一步地?想",
            r"慢慢想",
        ],
        "before": [
            r"回答之前",
            r"回答前",
            r"最终答案",
            r"最終答案",
            r"先分析",
            r"再回答",
            r"再给出答案",
            r"再給出答案",
        ],
        "justify": [r"论证", r"論證", r"证明", r"證明", r"论据", r"論據"],
        "detail": [r"详细", r"詳細", r"具体", r"具體"],
        "rubric": [r"评分标准", r"評分標準", r"评分细则", r"評分細則", r"打分", r"评分", r"評分"],
        "explain": [r"解释", r"解釋", r"说明", r"說明"],
        "why": [r"为什么", r"為什麼", r"为何", r"為何", r"理由", r"原因"],
    },
    "es": {
        "step": [r"paso a paso", r"paso por paso", r"muestra (?:todo )?(?:tu|el) (?:trabajo|procedimiento)"],
        "cot": [r"cadena de pensamientos?", r"proceso de (?:pensamiento|razonamiento)"],
        "verb": [
            r"muestra",
            r"muestre",
            r"muéstrame",
            r"explica",
            r"explique",
            r"explícame",
            r"describe",
            r"detalla",
            r"escribe",
            r"expón",
            r"presenta",
            r"incluye",
            r"proporciona",
        ],
        "noun": [r"razonamiento", r"lógica", r"justificación", r"argumentación", r"procedimiento"],
        "think": [r"piensa (?:con cuidado|detenidamente|bien)", r"reflexiona", r"razona"],
        "before": [r"antes de responder", r"antes de dar (?:la|tu) respuesta", r"respuesta final"],
        "justify": [r"justific"],
        "detail": [r"en detalle", r"detallad", r"detenidamente", r"exhaustiv"],
        "rubric": [r"rúbrica", r"criterios de evaluación", r"califica"],
        "explain": [r"explica", r"explique", r"explícame", r"explicación"],
        "why": [r"por qué"],
    },
    "fr": {
        "step": [r"étape par étape", r"pas à pas", r"étape après étape"],
        "cot": [r"chaîne de pensées?", r"processus de (?:réflexion|raisonnement)", r"cheminement"],
        "verb": [
            r"montre",
            r"montrez",
            r"explique",
            r"expliquez",
            r"détaille",
            r"détaillez",
            r"décris",
            r"décrivez",
            r"écris",
            r"écrivez",
            r"présente",
            r"présentez",
            r"expose",
            r"exposez",
            r"donne",
            r"donnez",
        ],
        "noun": [r"raisonnement", r"réflexion", r"logique", r"justification", r"démarche"],
        "think": [
            r"réfléchis",
            r"réfléchissez",
            r"pense (?:bien|attentivement)",
            r"pensez (?:bien|attentivement)",
        ],
        "before": [r"avant de répondre", r"réponse finale"],
        "justify": [r"justifi"],
        "detail": [r"en détail", r"détaillée?s?", r"de manière approfondie"],
        "rubric": [r"grille d'évaluation", r"critères d'évaluation", r"barème"],
        "explain": [r"explique", r"expliquez", r"explication"],
        "why": [r"pourquoi"],
    },
    "de": {
        "step": [
            r"schritt[\s-]*für[\s-]*schritt",
            r"schrittweise",
            r"zeig(?:e|en sie)? (?:den|deinen|ihren) rechenweg",
        ],
        "cot": [r"gedankenkette", r"denkprozess", r"gedankengang", r"denkweg", r"lösungsweg", r"rechenweg"],
        "verb": [
            r"zeig",
            r"erklär",
            r"beschreib",
            r"schreib",
            r"erläuter",
            r"lege .{0,20}dar",
            r"legen sie .{0,20}dar",
            r"gib",
            r"geben sie",
            r"leg offen",
        ],
        "noun": [
            r"überlegung",
            r"gedankeng",
            r"denkprozess",
            r"begründung",
            r"argumentation",
            r"logik",
            r"herleitung",
        ],
        "think": [r"denk(?:e|en sie)? (?:sorgfältig|gründlich|genau) nach", r"überleg"],
        "before": [r"bevor (?:du|sie) antwort", r"vor der antwort", r"endgültige antwort", r"finale antwort"],
        "justify": [r"begründ", r"rechtfertig"],
        "detail": [r"ausführlich", r"detailliert", r"im detail", r"gründlich"],
        "rubric": [r"bewertungsraster", r"bewertungskriterien", r"bewerte"],
        "explain": [r"erklär", r"erläuter"],
        "why": [r"warum", r"wieso", r"weshalb"],
    },
    "pt": {
        "step": [r"passo a passo", r"etapa por etapa"],
        "cot": [r"cadeia de pensamentos?", r"processo de (?:pensamento|raciocínio)", r"linha de raciocínio"],
        "verb": [
            r"mostre",
            r"mostra",
            r"explique",
            r"explica",
            r"descreva",
            r"detalhe",
            r"escreva",
            r"apresente",
            r"exponha",
            r"inclua",
            r"forneça",
        ],
        "noun": [r"raciocínio", r"lógica", r"justificativa", r"justificação", r"argumentação"],
        "think": [r"pense (?:com cuidado|cuidadosamente|bem)", r"reflita", r"raciocine"],
        "before": [r"antes de responder", r"resposta final"],
        "justify": [r"justifi"],
        "detail": [r"em detalhes?", r"detalhad"],
        "rubric": [r"rubrica", r"critérios de avaliação"],
        "explain": [r"explique", r"explica", r"explicação"],
        "why": [r"por que", r"por quê"],
    },
    "it": {
        "step": [r"passo (?:dopo|per) passo", r"un passo alla volta"],
        "cot": [r"catena di pensieri?", r"processo di (?:pensiero|ragionamento)"],
        "verb": [
            r"mostra",
            r"mostrami",
            r"spiega",
            r"spiegami",
            r"descrivi",
            r"scrivi",
            r"illustra",
            r"esponi",
            r"presenta",
            r"fornisci",
            r"dettaglia",
        ],
        "noun": [r"ragionamento", r"logica", r"giustificazione", r"motivazione", r"procedimento"],
        "think": [r"pensa (?:attentamente|bene|con attenzione)", r"rifletti", r"ragiona"],
        "before": [r"prima di rispondere", r"risposta finale"],
        "justify": [r"giustific", r"motiva"],
        "detail": [r"in dettaglio", r"dettagliat", r"approfondit"],
        "rubric": [r"griglia di valutazione", r"criteri di valutazione"],
        "explain": [r"spiega", r"spiegami", r"spiegazione"],
        "why": [r"perché"],
    },
    "ru": {
        "step": [r"шаг за шагом", r"пошагов", r"поэтапн", r"по шагам"],
        "cot": [
            r"цепочк\w* (?:рассуждений|мыслей)",
            r"ход\w* (?:мысл|рассуждени|решени)",
            r"мыслительн\w* процесс",
        ],
        "verb": [
            r"покажи",
            r"объясни",
            r"опиши",
            r"распиши",
            r"изложи",
            r"приведи",
            r"напиши",
            r"представь",
            r"продемонстрируй",
        ],
        "noun": [r"рассуждени", r"логик", r"обосновани", r"аргументаци", r"вывод"],
        "think": [r"подумай", r"поразмысли", r"рассуждай", r"хорошо подумав"],
        "before": [
            r"прежде чем ответить",
            r"перед (?:тем как )?ответ",
            r"окончательн\w* ответ",
            r"итогов\w* ответ",
        ],
        "justify": [r"обоснуй", r"обосновани", r"аргументируй"],
        "detail": [r"подробн", r"детальн", r"развернут"],
        "rubric": [r"критери\w* оценк", r"оцени"],
        "explain": [r"объясни", r"объяснение"],
        "why": [r"почему"],
    },
    "ja": {
        "step": [
            r"ステップバイステップ",
            r"一歩ずつ",
            r"一歩一歩",
            r"段階的に",
            r"順を追って",
            r"ステップごと",
            r"段階を追って",
        ],
        "cot": [
            r"思考過程",
            r"思考プロセス",
            r"推論過程",
            r"思考の過程",
            r"思考の連鎖",
            r"途中式",
            r"解き方",
        ],
        "verb": [r"説明し", r"示し", r"見せ", r"書い", r"書き出", r"述べ", r"記述し"],
        "noun": [r"推論", r"考え方", r"根拠", r"論理"],
        "think": [r"よく考え", r"じっくり考え", r"慎重に考え", r"考えてみ"],
        "before": [r"答える前に", r"回答する前に", r"最終的な答え", r"最終回答"],
        "justify": [r"正当化", r"論証"],
        "detail": [r"詳しく", r"詳細に", r"丁寧に"],
        "rubric": [r"採点基準", r"評価基準", r"ルーブリック", r"採点し"],
        "explain": [r"説明し", r"説明"],
        "why": [r"なぜ", r"どうして", r"理由"],
    },
    "ko": {
        "step": [r"단계별로", r"단계적으로", r"차근차근", r"한 단계씩", r"단계별"],
        "cot": [r"사고 ?과정", r"추론 ?과정", r"생각의 사슬", r"풀이 ?과정", r"생각 ?과정"],
        "verb": [r"설명", r"보여", r"작성", r"제시", r"써 ?주", r"서술"],
        "noun": [r"추론", r"근거", r"논리"],
        "think": [r"신중하게 생각", r"천천히 생각", r"깊이 생각", r"생각해 ?보"],
        "before": [r"답하기 전에", r"대답하기 전에", r"최종 ?답"],
        "justify": [r"정당화", r"논증"],
        "detail": [r"자세히", r"상세히", r"구체적으로"],
        "rubric": [r"채점 ?기준", r"평가 ?기준", r"루브릭"],
        "explain": [r"설명"],
        "why": [r"왜", r"이유"],
    },
    "ar": {
        "step": [r"خطوة بخطوة", r"خطوة خطوة", r"على مراحل"],
        "cot": [
            r"سلسلة (?:الأفكار|التفكير)",
            r"طريقة (?:تفكيرك|التفكير)",
            r"خطوات (?:الحل|التفكير)",
            r"عملية التفكير",
        ],
        "verb": [r"اشرح", r"وضح", r"فسر", r"اعرض", r"أظهر", r"اظهر", r"بين", r"اكتب", r"قدم"],
        "noun": [r"تفكير", r"استدلال", r"منطق", r"تعليل"],
        "think": [r"فكر (?:بعناية|جيدا|بعمق)", r"فكر خطوة"],
        "before": [r"قبل (?:الإجابة|الاجابة|أن تجيب)", r"الإجابة النهائية", r"الجواب النهائي"],
        "justify": [r"برر", r"علل", r"تبرير"],
        "detail": [r"بالتفصيل", r"مفصل"],
        "rubric": [r"معايير التقييم", r"سلم التقييم", r"معايير التصحيح"],
        "explain": [r"اشرح", r"وضح", r"فسر"],
        "why": [r"لماذا", r"الأسباب", r"السبب"],
    },
    "hi": {
        "step": [
            r"चरण[\s-]*दर[\s-]*चरण",
            r"चरणबद्ध",
            r"क़दम[\s-]*दर[\s-]*क़दम",
            r"कदम[\s-]*दर[\s-]*कदम",
            r"स्टेप बाय स्टेप",
        ],
        "cot": [r"विचार प्रक्रिया", r"सोचने की प्रक्रिया", r"तर्क प्रक्रिया", r"हल करने की प्रक्रिया"],
        "verb": [r"समझा", r"दिखा", r"बता", r"लिख", r"स्पष्ट कर", r"प्रस्तुत कर"],
        "noun": [r"तर्क", r"सोच"],
        "think": [r"ध्यान से सोच", r"सोच[\s-]*समझकर", r"गहराई से सोच"],
        "before": [r"उत्तर देने से पहले", r"जवाब देने से पहले", r"अंतिम उत्तर"],
        "justify": [r"औचित्य", r"सिद्ध कर"],
        "detail": [r"विस्तार से", r"विस्तृत"],
        "rubric": [r"मूल्यांकन मानदंड", r"अंक दें", r"रूब्रिक"],
        "explain": [r"समझा", r"व्याख्या"],
        "why": [r"क्यों", r"कारण"],
    },
    "tr": {
        "step": [r"adım adım", r"aşama aşama", r"basamak basamak"],
        "cot": [r"düşünce (?:zinciri|süreci)", r"düşünme süreci", r"akıl yürütme süreci", r"çözüm yolu"],
        "verb": [r"göster", r"açıkla", r"anlat", r"yaz", r"belirt", r"sun"],
        "noun": [r"akıl yürütme", r"mantığ", r"mantık", r"gerekçe", r"düşünce"],
        "think": [r"dikkatlice düşün", r"iyice düşün", r"düşünerek"],
        "before": [
            r"cevap vermeden önce",
            r"yanıtlamadan önce",
            r"nihai (?:cevap|yanıt)",
            r"son (?:cevap|yanıt)",
        ],
        "justify": [r"gerekçelendir", r"temellendir"],
        "detail": [r"ayrıntılı", r"detaylı"],
        "rubric": [r"değerlendirme kriterleri", r"puanlama", r"dereceli puanlama"],
        "explain": [r"açıkla"],
        "why": [r"neden", r"niçin"],
    },
    "vi": {
        "step": [r"từng bước", r"từng bước một", r"theo từng bước"],
        "cot": [r"chuỗi suy nghĩ", r"quá trình (?:suy luận|suy nghĩ|tư duy)", r"lối suy nghĩ", r"cách giải"],
        "verb": [
            r"trình bày",
            r"giải thích",
            r"cho thấy",
            r"hiển thị",
            r"viết ra",
            r"mô tả",
            r"nêu",
            r"đưa ra",
        ],
        "noun": [r"suy luận", r"lập luận", r"lý lẽ", r"tư duy"],
        "think": [r"suy nghĩ (?:kỹ|cẩn thận)", r"hãy nghĩ"],
        "before": [r"trước khi trả lời", r"câu trả lời cuối cùng", r"đáp án cuối cùng"],
        "justify": [r"chứng minh", r"biện minh"],
        "detail": [r"chi tiết", r"cặn kẽ"],
        "rubric": [r"tiêu chí đánh giá", r"thang điểm", r"chấm điểm"],
        "explain": [r"giải thích"],
        "why": [r"tại sao", r"vì sao", r"lý do"],
    },
    "id": {
        "step": [r"langkah demi langkah", r"selangkah demi selangkah", r"tahap demi tahap", r"bertahap"],
        "cot": [r"rantai pemikiran", r"proses (?:berpikir|penalaran|pemikiran)", r"alur (?:pikir|berpikir)"],
        "verb": [
            r"tunjukkan",
            r"jelaskan",
            r"uraikan",
            r"tuliskan",
            r"jabarkan",
            r"paparkan",
            r"berikan",
            r"sertakan",
        ],
        "noun": [r"penalaran", r"pemikiran", r"logika"],
        "think": [
            r"pikirkan (?:dengan )?(?:baik|hati-hati|matang)",
            r"berpikir(?:lah)? (?:dengan )?(?:hati-hati|cermat)",
        ],
        "before": [r"sebelum menjawab", r"jawaban akhir"],
        "justify": [r"justifikasi", r"buktikan"],
        "detail": [r"secara (?:rinci|detail|mendetail)", r"terperinci"],
        "rubric": [r"rubrik", r"kriteria penilaian"],
        "explain": [r"jelaskan", r"penjelasan"],
        "why": [r"mengapa", r"kenapa", r"alasan"],
    },
}

# Concept weights: one strong cue alone scores high, weak ones only add up.
_WEIGHTS: dict[str, float] = {
    "tags": 0.9,
    "step": 0.85,
    "show": 0.85,
    "cot": 0.7,
    "think": 0.55,
    "before": 0.45,
    "justify": 0.45,
    "rubric": 0.35,
    "noun": 0.3,
    "detail": 0.3,
    "explain": 0.2,
    "why": 0.12,
}

_TAGS = (
    # "(?:/\s*)?", not "/?\s*": two adjacent "\s*" split a run of n spaces n ways (quadratic backtracking)
    r"\s*(?:/\s*)?(?:think|thinking|thoughts?|reasoning|scratchpad|reflection|inner_monologue|cot|analysis)\s*>"
)


def _latin(fragment: str) -> bool:
    """Latin, Greek or Cyrillic: words are space-separated, so a cue must start a word."""
    return fragment[:1] < "\u0530"


def _prepare(fragment: str) -> str:
    # Normalised like the text (the regex syntax used here is ASCII and survives NFKC + casefold).
    return unicodedata.normalize("NFKC", fragment).casefold()


def _as_regex(fragment: str) -> str:
    # Dotless "ı" also matches "i": casefold turns Turkish upper-case "I" into "i", not "ı".
    return fragment.replace("ı", "[ıi]")


def _vocabulary() -> dict[str, frozenset[str]]:
    """Every distinct (normalised) fragment with the kinds of cue it signals."""
    kinds: dict[str, set[str]] = {}
    for vocab in _LANGS.values():
        for key, fragments in vocab.items():
            for f in fragments:
                # A chain-of-thought term is also a reasoning noun for "show + reasoning".
                extra = {key, "noun"} if key == "cot" else {key}
                kinds.setdefault(_prepare(f), set()).update(extra)
    return {f: frozenset(k) for f, k in kinds.items()}


_MEMO_SIZE = 4096
_ASCII_NON_WORD = str.maketrans({c: " " for c in map(chr, range(128)) if not (c.isalnum() or c == "_")})
_WORD_START = re.compile(r"\b\w{1,4}")
_CONTINUES = re.compile(r"[\w\[(]|\\w")


def _key(fragment: str) -> str:
    """The literal start a text word must have for ``fragment`` to match there.

    Four characters, or the whole leading word when shorter; a shorter literal run that the pattern
    continues inside the same word (``ход\\w*``) is its own, shorter key.
    """
    m = re.match(r"\w+", fragment)
    if m is None:
        raise ValueError(f"cue fragment must start with a literal word: {fragment!r}")
    run = m.group()
    if len(run) >= 4:
        return run[:4]
    return run


class _Index:
    """Cue fragments indexed by their literal start, so most text never reaches a regex.

    Python's ``re`` tries alternatives one by one at every position, which costs hundreds of
    microseconds per kilobyte for a thousand cues. Instead, one C-level pass collects the first
    four characters of every word (or the set of characters, for scripts without spaces), a set
    intersection finds the few keys present, and only those keys' small regexes run. Each starts
    with its key as a literal, which ``re`` finds with a fast substring search.
    """

    def __init__(self, vocab: dict[str, frozenset[str]]) -> None:
        groups: dict[str, list[str]] = {}
        for f in vocab:
            if _latin(f):
                key = _key(f)
                for variant in {key, key.replace("ı", "i")}:
                    groups.setdefault(variant, []).append(f)
            else:
                groups.setdefault(f[0], []).append(f)
        # Per key: one scanning regex, and each member fragment with its kinds. A hit is credited
        # with every member that matches the hit's text, so overlapping cues (the verb "explica"
        # and the explain-request "explica") all count whatever the alternation picked.
        self.members: dict[str, list[tuple[re.Pattern[str], frozenset[str]]]] = {}
        self.latin4: dict[str, re.Pattern[str]] = {}
        self.latin_short: dict[str, re.Pattern[str]] = {}
        self.other: dict[str, re.Pattern[str]] = {}
        for key, fragments in groups.items():
            ordered = sorted(fragments, key=len, reverse=True)
            head = _as_regex(ordered[0][: len(key)])
            # The key's regex form is a prefix of each fragment's ("ı" -> "[ıi]" is per character).
            rests = [_as_regex(f)[len(head) :] for f in ordered]
            pattern = re.compile(head + "(?:" + "|".join(rests) + ")")
            self.members[pattern.pattern] = [(re.compile(_as_regex(f)), vocab[f]) for f in ordered]
            if not _latin(key):
                self.other[key] = pattern
            elif len(key) == 4 or all(_CONTINUES.match(f, len(key)) is None for f in fragments):
                self.latin4[key] = pattern
            else:
                self.latin_short[key] = pattern
        self.short_lengths = sorted({len(k) for k in self.latin_short})
        # First characters of the cues in scripts without spaces, found in one C-level scan
        # (``set(text)`` would allocate a string per non-Latin-1 character).
        self.other_first = re.compile("[" + "".join(re.escape(k) for k in sorted(self.other)) + "]")
        self.short_lengths_ascii = sorted({len(k) for k in self.latin_short if k.isascii()})
        self._credits: dict[tuple[str, str], frozenset[str]] = {}

    def hits(self, text: str) -> list[tuple[int, int, frozenset[str]]]:
        """Every cue occurrence in ``text`` (normalised), as (start, end, kinds)."""
        out: list[tuple[int, int, frozenset[str]]] = []
        ascii_only = text.isascii()
        if ascii_only:  # same word starts as the regex, at a fraction of the cost
            starts = {w[:4] for w in set(text.translate(_ASCII_NON_WORD).split())}
        else:
            starts = set(_WORD_START.findall(text))
        patterns = [self.latin4[k] for k in starts.intersection(self.latin4)]
        for n in self.short_lengths_ascii if ascii_only else self.short_lengths:
            patterns.extend(
                self.latin_short[k] for k in {w[:n] for w in starts}.intersection(self.latin_short)
            )
        for pattern in patterns:
            for m in pattern.finditer(text):
                s = m.start()
                if s == 0 or not (text[s - 1].isalnum() or text[s - 1] == "_"):
                    out.append(self._credit(pattern, text, s, m.end()))
        if not ascii_only:
            for k in set(self.other_first.findall(text)):
                pattern = self.other[k]
                out.extend(self._credit(pattern, text, m.start(), m.end()) for m in pattern.finditer(text))
        return out

    def _credit(
        self, pattern: re.Pattern[str], text: str, start: int, end: int
    ) -> tuple[int, int, frozenset[str]]:
        """Kinds of every member fragment that matches the hit (memoised: cue strings repeat)."""
        cue = text[start:end]
        memo = (pattern.pattern, cue)
        kinds = self._credits.get(memo)
        if kinds is None:
            found: set[str] = set()
            for member, member_kinds in self.members[pattern.pattern]:
                if member.match(cue) is not None:
                    found |= member_kinds
            kinds = frozenset(found)
            if len(self._credits) >= _MEMO_SIZE:
                self._credits.clear()
            self._credits[memo] = kinds
        return start, end, kinds


_INDEX = _Index(_vocabulary())
_TAG_RE = re.compile(r"<" + _TAGS)
_BREAK = re.compile(r"[.!?。！？\n]")
_SHOW_GAP = 40


def _shows(verbs: list[tuple[int, int]], nouns: list[tuple[int, int]], text: str) -> bool:
    """A verb and a reasoning noun within one short span of one sentence, in either order.

    Each verb is paired only with the nouns that start within ``_SHOW_GAP`` after it or end within it
    before it (found by bisection), not with every noun: dense text cannot make this quadratic."""
    starts = sorted({ns for ns, _ in nouns})
    ends = sorted({ne for _, ne in nouns})
    for vs, ve in verbs:
        for i in range(bisect.bisect_left(starts, ve), len(starts)):  # a noun after: ns in [ve, ve+gap]
            ns = starts[i]
            if ns - ve > _SHOW_GAP:
                break
            if _BREAK.search(text, ve, ns) is None:
                return True
        for i in range(bisect.bisect_left(ends, vs - _SHOW_GAP), len(ends)):  # before: ne in [vs-gap, vs]
            ne = ends[i]
            if ne > vs:
                break
            if _BREAK.search(text, ne, vs) is None:
                return True
    return False


def elicitation_score(text: str) -> float:
    """Score in [0, 1]: 0 when nothing asks for written-out reasoning, near 1 for explicit requests.

    Never raises on a ``str``; anything else scores 0.
    """
    if not isinstance(text, str) or not text:
        return 0.0
    if len(text) > SCAN_CHARS:
        half = SCAN_CHARS // 2
        text = text[:half] + "\n" + text[-half:]
    norm = _norm(text)
    found: set[str] = set()
    verbs: list[tuple[int, int]] = []
    nouns: list[tuple[int, int]] = []
    for start, end, kinds in _INDEX.hits(norm):
        found |= kinds
        if "verb" in kinds:
            verbs.append((start, end))
        if "noun" in kinds:
            nouns.append((start, end))
    if verbs and nouns and _shows(verbs, nouns, norm):
        found.add("show")
    if "<" in norm and _TAG_RE.search(norm) is not None:
        found.add("tags")
    miss = 1.0
    for kind in sorted(found):  # a fixed order: the same float in every process, whatever PYTHONHASHSEED
        miss *= 1.0 - _WEIGHTS.get(kind, 0.0)
    return 1.0 - miss
