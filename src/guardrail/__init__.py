"""guardrail: defend a model served over HTTP against distillation."""

__version__ = "0.1.0"

__all__ = ["__version__"]
