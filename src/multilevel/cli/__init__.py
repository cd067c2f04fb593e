"""Command line: ``multilevel fit | anova | sample | report | graph | gee | crt | example``.

Errors in the input (paths, formulas, columns, data) print one line on stderr and
exit with status 2; no tracebacks.
"""

from __future__ import annotations

import sys

from .parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help()  # no arguments: what the command does, not only what is missing
        return 2
    args = parser.parse_args(argv)
    from ..errors import FormulaError, MultilevelError
    from .common import FLAGS, command_flags, in_cli_terms

    FLAGS.set(command_flags(args.command_parser))  # messages name this command's flags
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # the reader went away (``multilevel ... | head``): stop quietly, as Unix tools do
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except FormulaError as exc:
        print(f"multilevel: error: {in_cli_terms(exc.one_line())}", file=sys.stderr)
        return 2
    except MultilevelError as exc:
        print(f"multilevel: error: {in_cli_terms(' '.join(str(exc).split()))}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"multilevel: error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
