"""``python -m pmlm.reports``: rewrite every generated block of README.md and docs/."""

from pmlm.reports.documents import write_reports
from pmlm.reports.files import ROOT

if __name__ == "__main__":
    for path in write_reports():
        print(f"updated {path.relative_to(ROOT)}")
