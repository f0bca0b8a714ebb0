"""Every generated section of README.md and docs/ matches the results file it is rendered from."""

from pmlm.reports import replace_block, stale_reports


def test_prose_and_results_agree():
    stale = stale_reports()
    assert not stale, (f"generated sections out of date with their results files: {stale}; "
                       "run `python -m pmlm.reports` and commit the documents")


def test_replace_block_swaps_only_the_marked_text():
    text = "intro\n<!-- demo:begin -->\nold\n<!-- demo:end -->\noutro"
    assert replace_block(text, "demo", "new") == "intro\n<!-- demo:begin -->\nnew\n<!-- demo:end -->\noutro"
    assert replace_block("no markers", "demo", "new") == "no markers"


def test_measured_numbers_live_in_generated_sections_only():
    """Outside the generated blocks, the README and the guides quote no measurement (a speed-up, a
    BLEU, an accuracy in per cent with decimals): those come from results files, rendered above."""
    import re

    from pmlm.reports import DOCUMENTS

    measured = re.compile(r"\b\d+\.\d+x\b|\bBLEU (of )?\d|\b\d+\.\d%|\bchrF \d")
    for path in DOCUMENTS:
        prose = re.sub(r"<!-- ([\w-]+):begin -->.*?<!-- \1:end -->", "", path.read_text(), flags=re.S)
        found = [m.group(0) for m in measured.finditer(prose)]
        assert not found, f"{path.name} quotes measurements by hand: {found[:5]}; render them from a results file"
