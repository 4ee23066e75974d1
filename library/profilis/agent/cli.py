"""``profilis-agent``: the command line of the agent payload (``install DIR``).

``profilis-agent install DIR`` copies the payload (``profilis.agent.install``) into DIR and
prints DIR, the entry to prepend to ``PYTHONPATH``, alone on stdout (what a script captures);
what happened goes to stderr. ``python -m profilis.agent.cli`` runs the same command.
Exit status: 0 installed, 1 could not install, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from profilis._commands import CommandParser
from profilis._version import __version__
from profilis.agent.install import InstallError, install_payload

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="profilis-agent",
        description="The Profilis agent payload: install it into a directory, then put that "
        "directory first on the app's PYTHONPATH.",
        epilog="Exit status: 0 installed, 1 could not install, 2 bad usage.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    install = commands.add_parser(
        "install",
        help="copy the payload (profilis/ and sitecustomize.py) into DIR",
        description="Copy the payload into DIR (created if missing; an existing payload is "
        "replaced) and print the PYTHONPATH entry to use.",
    )
    install.add_argument("dir", metavar="DIR", help="where the payload goes (an emptyDir, say)")
    install.add_argument(
        "--compile",
        action="store_true",
        help="also write bytecode for this Python (saves the app compiling the agent at every "
        "start when it runs this Python version and cannot write bytecode itself)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        directory = install_payload(args.dir, compile_bytecode=args.compile)
    except (InstallError, OSError) as exc:
        print(f"profilis-agent: cannot install into {args.dir}: {exc}", file=sys.stderr)
        return 1
    print(
        f"profilis-agent: installed profilis {__version__} into {directory}; "
        f"prepend it to PYTHONPATH: PYTHONPATH={directory}${{PYTHONPATH:+:$PYTHONPATH}}",
        file=sys.stderr,
    )
    print(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main())
