"""The ``bigclust`` command line.

Subcommands live in :mod:`bigclust.cli._commands` and :mod:`bigclust.cli._demo`; where the
work runs is chosen in :mod:`bigclust.cli._scheduler`; estimator options are generated in
:mod:`bigclust.cli._options`. Exit codes: 0 success, 1 a data or runtime error (bad or
missing data, an unreachable scheduler, a permission error, a failed computation), 2 a usage
error (bad arguments or parameter values, an output that exists or cannot be written), 130
interrupted. Errors are one line on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings

from bigclust.cli._commands import (
    MAKE_BLOBS_THREADS,
    Fit,
    Info,
    KMeansAlias,
    MakeBlobs,
    Predict,
    Score,
)
from bigclust.cli._demo import Demo
from bigclust.cli._options import DEST
from bigclust.cli._outputs import UsageError

__all__ = ["COMMANDS", "EXIT_DATA", "EXIT_USAGE", "MAKE_BLOBS_THREADS", "build_parser", "main"]

EXIT_DATA, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130

COMMANDS = {
    "demo": Demo,
    "fit": Fit,
    "predict": Predict,
    "score": Score,
    "info": Info,
    "make-blobs": MakeBlobs,
    "kmeans": KMeansAlias,
}

#: Usage errors (exit 2) besides argparse's own.
USAGE_ERRORS = (UsageError, FileExistsError)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``prog: error: message``), exit code 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action):
        if action.default is None and action.dest.startswith(DEST):
            return f"{action.help} (default: none)"  # an estimator's None, typed as "none"
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help  # options without a default value
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from bigclust import __version__

    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser = _Parser(
        prog="bigclust",
        description="Clustering for data larger than memory, on Dask.",
        epilog="Exit codes: 0 success, 1 data or runtime error, 2 usage error.",
        formatter_class=_Formatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"bigclust {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=command.help,
            description=command.help,
            parents=[common],
            formatter_class=_Formatter,
        )
        command.add_arguments(p, common)
    return parser


def _one_line(err: BaseException) -> str:
    message = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, ImportError):
        missing = err.name or ""
        if "s3fs" in message or missing == "s3fs":
            return f'{message}: s3:// needs the s3 extra: pip install "bigclust[s3]"'
        return f"{message} (a missing optional dependency?)"
    if isinstance(err, (KeyError, AttributeError, AssertionError, RuntimeError)) and not isinstance(
        err, RecursionError
    ):
        return f"{type(err).__name__}: {message}"
    return message


@contextlib.contextmanager
def _one_line_warnings():
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"bigclust: {category.__name__}: {message}", file=sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


def _progress_bars(args):
    """The fits' progress bars: shown on a terminal (stderr), never in logs or pipes, unless
    ``BIGCLUST_PROGRESS`` says otherwise or the command was given ``--no-progress``."""
    from bigclust._progress import ENV_VAR, set_progress

    if getattr(args, "no_progress", False):
        return set_progress(False)
    if os.environ.get(ENV_VAR, "").strip():
        return set_progress(None)
    return set_progress(sys.stderr.isatty())


def main(argv: list[str] | None = None) -> int:
    """Run the ``bigclust`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    name = " ".join(x for x in (args.command, getattr(args, "estimator", None)) if x)
    try:
        with _one_line_warnings(), _progress_bars(args):
            return args.run(args)
    except KeyboardInterrupt:
        print(f"bigclust {name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        if args.debug:
            raise
        code = EXIT_USAGE if isinstance(err, USAGE_ERRORS) else EXIT_DATA
        print(f"bigclust {name}: error: {_one_line(err)}", file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
