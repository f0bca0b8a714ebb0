"""``python -m pmlm.ablation``: run the miniature Table 6, or rebuild its report (see :mod:`pmlm.ablation`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pmlm.ablation import __doc__ as DOC
from pmlm.ablation.presets import ABLATION_PRESETS, VARIANTS
from pmlm.ablation.report import report
from pmlm.ablation.runs import run

def main(argv: list[str] | None = None) -> None:
    from pmlm.train import smoke_mode

    p = argparse.ArgumentParser(prog="python -m pmlm.ablation", description=DOC,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(ABLATION_PRESETS),
                   help="micro (seconds), cpu (tens of minutes), gpu (under an hour); default: "
                        "micro under PMLM_SMOKE/CI, else cpu")
    p.add_argument("--out", help="output directory (default runs/ablation-<preset>)")
    p.add_argument("--seeds", type=int, nargs="+", help="override the preset's seeds")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="a subset of the variants")
    p.add_argument("--no-control", action="store_true", help="skip the no-pre-training control")
    p.add_argument("--no-rel-pos", action="store_true", help="drop the relative position bias in every run")
    p.add_argument("--fresh", action="store_true", help="forget earlier results in --out")
    p.add_argument("--figure", help="where to save the figure ('' for none; default figures/ablation.png, "
                                    "or <out>/ablation.png for the micro preset, which must not replace it)")
    p.add_argument("--results", help="the results file (default results/ablation-<preset>.jsonl, "
                                     "or <out>/results.jsonl for the micro preset)")
    p.add_argument("--report-only", action="store_true", help="rebuild table and figure from the results file")
    args = p.parse_args(argv)
    preset = args.preset or ("micro" if smoke_mode() else "cpu")
    out = Path(args.out or f"runs/ablation-{preset}")
    results = Path(args.results) if args.results else (out / "results.jsonl" if preset == "micro"
                                                        else Path(f"results/ablation-{preset}.jsonl"))
    if args.figure is None:
        args.figure = str(out / "ablation.png") if preset == "micro" else "figures/ablation.png"
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    if args.report_only:
        if not results.is_file():
            raise SystemExit(f"python -m pmlm.ablation: error: no results at {results}; run the ablation first "
                             "(without --report-only) or pass --results")
        try:
            out.mkdir(parents=True, exist_ok=True)
            table = report(out, preset, Path(args.figure) if args.figure else None, results)
        except (ValueError, OSError) as err:  # a damaged results file (file:line), an unwritable --out
            raise SystemExit(f"python -m pmlm.ablation: error: {err}") from None
    else:
        table = run(preset, out, seeds=args.seeds, variants=args.variants, control=not args.no_control,
                    rel_pos=not args.no_rel_pos, fresh=args.fresh, figure=args.figure or None, log=log,
                    results_path=results)
    print(table)


if __name__ == "__main__":
    main()
