"""guardrail: defend a model served over HTTP against distillation.

The public API is re-exported here; implementation modules are private or live in subpackages.
"""

from guardrail.adapters import Guardrail, GuardrailEvent, GuardrailFromEnv, GuardrailWSGI
from guardrail.elicitation import elicitation_score
from guardrail.engine import (
    Action,
    AsyncGuard,
    Decision,
    EngineStore,
    Event,
    Guard,
    LinkageSettings,
    Policy,
    RequestFacts,
    StoreSettings,
    analysis_report,
)
from guardrail.extract import Extractor, NoPrompt, Prompt, Turn, estimate_tokens, extract
from guardrail.fingerprint import (
    Fingerprint,
    Fingerprinter,
    LSHIndex,
    PromptFingerprint,
    TemplateIndex,
    TemplateMatch,
    normalize,
)
from guardrail.limiter import (
    BucketRequest,
    BucketResult,
    Limit,
    Limiter,
    MultiResult,
    StorageError,
    TokenBucket,
    storage_from_uri,
)
from guardrail.report import JsonEvents, Metrics, explain_account, render_html
from guardrail.simulate import Simulation, simulate

__version__ = "0.1.0"

__all__ = [
    "Action",
    "AsyncGuard",
    "BucketRequest",
    "BucketResult",
    "Decision",
    "EngineStore",
    "Event",
    "Extractor",
    "Fingerprint",
    "Fingerprinter",
    "Guard",
    "Guardrail",
    "GuardrailEvent",
    "GuardrailFromEnv",
    "GuardrailWSGI",
    "JsonEvents",
    "LSHIndex",
    "Limit",
    "Limiter",
    "LinkageSettings",
    "Metrics",
    "MultiResult",
    "NoPrompt",
    "Policy",
    "Prompt",
    "PromptFingerprint",
    "RequestFacts",
    "Simulation",
    "StorageError",
    "StoreSettings",
    "TemplateIndex",
    "TemplateMatch",
    "TokenBucket",
    "Turn",
    "__version__",
    "analysis_report",
    "elicitation_score",
    "estimate_tokens",
    "explain_account",
    "extract",
    "normalize",
    "render_html",
    "simulate",
    "storage_from_uri",
]
