"""``guardrail explain ACCOUNT``: why is this key throttled? Read from the shared engine state.

Point it at the deployment's Redis (``--storage`` or ``GUARDRAIL_STORAGE``) with the deployment's
``GUARDRAIL_SECRET`` in the environment, so the raw key hashes to the id the workers store. The library call
behind it is ``guardrail.report.explain_account``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from guardrail.limiter._uri import display_uri, scrub_uri
from guardrail.report._explain import explain_account, explain_text

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "explain",
        help="explain guardrail's current verdict on one account (server-side, from the shared store)",
        description=(
            "Show what guardrail's shared state says about ACCOUNT: its cluster and verdict, the evidence, "
            "its profile and the templates its traffic carries. Identifiers are hashed with GUARDRAIL_SECRET."
        ),
    )
    parser.add_argument("account", metavar="ACCOUNT", help="API key or account id (or its 32-hex keyed hash)")
    parser.add_argument(
        "--storage",
        default=os.environ.get("GUARDRAIL_STORAGE"),
        help="engine store URI, e.g. redis://host:6379/0 (default: $GUARDRAIL_STORAGE)",
    )
    parser.add_argument(
        "--prefix",
        default=os.environ.get("GUARDRAIL_PREFIX"),
        help="the deployment's engine key prefix, if not the default (default: $GUARDRAIL_PREFIX)",
    )
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--hashed", dest="hashed", action="store_true", default=None, help="ACCOUNT is a hash")
    kind.add_argument("--raw", dest="hashed", action="store_false", help="ACCOUNT is a raw key, even if hex")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    storage: str | None = args.storage
    if not storage:
        print("error: no store: pass --storage redis://host:6379/0 or set GUARDRAIL_STORAGE", file=sys.stderr)
        return 2
    if storage.startswith("memory"):
        print(
            "error: memory:// state lives inside the serving process; explain needs the shared store "
            "(redis://...), or call guardrail.report.explain_account(guard.store, key) in-process",
            file=sys.stderr,
        )
        return 2
    try:
        result = explain_account(storage, args.account, hashed=args.hashed, prefix=args.prefix)
    except (ValueError, OSError) as exc:  # ConnectionError is an OSError
        print(f"error: {scrub_uri(str(exc), storage)}", file=sys.stderr)
        return 1
    except Exception as exc:  # a store error (guardrail.limiter.StorageError) or the backend's own
        print(f"error: cannot read {display_uri(storage)}: {scrub_uri(str(exc), storage)}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(explain_text(result))
    return 0
