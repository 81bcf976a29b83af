"""``sparsegan report``: paper-style tables and figures from run folders."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    from sparsegan.experiments.report import write_report

    path = write_report(args.runs_dir, args.out, metric=args.metric)
    print(f"report: {path} and {path.with_suffix('.html')}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="report.md + report.html (tables, figures) from run folders",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("runs_dir", metavar="RUNS_DIR", help="a folder of run folders (searched recursively), or one run")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="where report.md, report.html, figures/ go")
    p.add_argument("--metric", help="metric to tabulate, one table per protocol it was measured under (e.g. "
                                    "fid_domain), or one protocol (e.g. fid_domain@1000) [default: the metric most "
                                    "runs have; ties: fid, then fid_domain]")
    p.set_defaults(func=run)
