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
