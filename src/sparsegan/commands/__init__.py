"""Subcommands of ``sparsegan``: one module per verb, each with ``add_parser(subparsers)``."""
