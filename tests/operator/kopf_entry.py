"""The operator as ``kopf run`` loads it in the tests: the production ``register`` and CLI
parsing, with the flags from PROFILIS_TEST_OPERATOR_ARGS (JSON list)."""

import json
import os

import kopf

from profilis_operator.cli import build_parser, options_from_args
from profilis_operator.handlers import register

_args = build_parser().parse_args(json.loads(os.environ["PROFILIS_TEST_OPERATOR_ARGS"]))
register(kopf.get_default_registry(), options_from_args(_args, os.environ))
