"""guardrail: defend a model served over HTTP against distillation.

The public API is re-exported here; implementation modules are private or live in subpackages.
"""

from guardrail.elicitation import elicitation_score
from guardrail.extract import Extractor, NoPrompt, Prompt, Turn, estimate_tokens, extract
from guardrail.simulate import Simulation, simulate

__version__ = "0.1.0"

__all__ = [
    "Extractor",
    "NoPrompt",
    "Prompt",
    "Simulation",
    "Turn",
    "__version__",
    "elicitation_score",
    "estimate_tokens",
    "extract",
    "simulate",
]
