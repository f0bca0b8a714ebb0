"""pmlm.viz: what the pictures and widgets of the notebooks show is what the method does.

Rendering is checked through what it returns (spans, text, patches, widget values), headless:
matplotlib draws with Agg, the widgets are built without a browser or a kernel.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

import pmlm  # noqa: E402
from pmlm import viz  # noqa: E402

from test_worked_example import PAPER_MATRIX  # noqa: E402

WORDS = viz.split_words("It is a truth universally acknowledged, that a single man in possession "
                        "of a good fortune, must be in want of a wife.")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_split_words_separates_punctuation_and_keeps_apostrophes():
    assert viz.split_words("Mr. Bennet's wife, said she.") == ["Mr", ".", "Bennet's", "wife", ",", "said",
                                                               "she", "."]
    assert WORDS[5:7] == ["acknowledged", ","]


def test_block_spans_are_sorted_by_start_and_numbered_in_factorization_order():
    assert viz.block_spans([[5, 6], [1], [9]]) == [(1, 2, 2), (5, 7, 1), (9, 10, 3)]
    with pytest.raises(ValueError, match="not contiguous"):
        viz.block_spans([[1, 3]])


def test_text_rendering_brackets_each_block_with_its_step():
    text = viz.render_blocks_text(WORDS, [[20, 21], [3]])
    assert text.startswith("It is a [2: truth] universally acknowledged ,")
    assert "must be [1: in want] of a wife ." in text


def test_html_rendering_highlights_each_block_once_in_step_colour_and_escapes():
    html = viz.render_blocks_html(["a", "<b>", "c", "d"], [[2, 3], [1]])
    assert html.count("<sup") == 2
    assert "&lt;b&gt;" in html and "<b>" not in html
    # the second block drawn (step 2) is the one that starts first in the text
    assert html.index("&nbsp;2</sup>") < html.index("&nbsp;1</sup>")
    assert viz.step_color(2, 2) in html and viz.step_color(1, 2) in html
    shown = viz.render_blocks_html(["a", "b"], [[1]], shown=["a", "[M]"])
    assert "&rarr;[M]" in shown


def test_plot_blocks_draws_one_box_per_block_and_line_and_every_word():
    blocks = [[20, 21, 22, 23, 24], [3]]
    ax = viz.plot_blocks(WORDS, blocks, width=1.0)  # narrow: the 5-token block wraps
    word_texts = ax.texts[: len(WORDS)]  # the words come first, in order, then the step numbers
    assert [t.get_text() for t in word_texts] == WORDS
    lines_of_long_block = {t.get_position()[1] for t in word_texts[20:25]}
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    assert len(boxes) == len(lines_of_long_block) + 1 >= 3
    assert [t.get_text() for t in ax.texts[len(WORDS):]] == ["2", "1"]  # one number per block, by start


def test_proposal_lengths_are_the_algorithm_s_draw():
    p = viz.proposal_lengths(0.4, (2, 6))
    assert p[1] == pytest.approx(0.6) and p[4] == pytest.approx(0.08) and sum(p.values()) == pytest.approx(1)
    assert viz.proposal_lengths(1.0, (1, 2)) == {1: 0.5, 2: 0.5}


def test_sampler_statistics_are_seeded_and_match_the_paper():
    a = viz.sampler_statistics(num_tokens=128, trials=300, seed=1)
    assert a == viz.sampler_statistics(num_tokens=128, trials=300, seed=1)
    shares = a["masked_share"]
    assert min(shares) >= 0.15 and 0.155 < sum(shares) / len(shares) < 0.175
    assert "mean masked share" in viz.summarize_sampler(a)
    axes = viz.plot_sampler_histograms(a)
    assert len(axes) == 2 and axes[1].get_xlim()[0] < 15  # the paper's 15% line is in view


def test_histogram_calls_only_the_paper_s_ratio_the_paper_s():
    legend = lambda stats: [t.get_text() for t in viz.plot_sampler_histograms(stats)[1].get_legend().get_texts()]  # noqa: E731
    assert legend(viz.sampler_statistics(64, 50, 0))[:1] == ["paper's ratio 15%"]
    chosen = legend(viz.sampler_statistics(64, 50, 0, mask_ratio=0.37))
    assert chosen[:2] == ["paper's ratio 15%", "chosen ratio 37%"]


def test_replacement_statistics_are_80_10_10_without_special_tokens():
    s = viz.replacement_statistics(num_tokens=20000, seed=0)
    c = s["counts"]
    assert sum(c.values()) == 20000 and s["special_drawn"] == 0
    assert abs(c["[M]"] / 20000 - 0.8) < 0.01
    assert abs(c["random"] / 20000 - 0.1) < 0.01 and abs(c["kept"] / 20000 - 0.1) < 0.01
    viz.plot_replacement(s)


def test_worked_example_table_and_matrix_are_the_paper_s():
    ex, itos = viz.worked_example()
    rows = viz.layout_rows(ex, itos, position_base=1)
    assert [r["token"] for r in rows] == ["x1", "[M]", "x3", "[M]", "[M]", "x6", "[P]", "[P]", "x4", "x5",
                                          "[P]", "x2"]
    assert [r["position"] for r in rows] == [1, 2, 3, 4, 5, 6, 4, 5, 4, 5, 2, 2]
    assert [r["role"] for r in rows] == ["context", "masked", "context", "masked", "masked", "context",
                                         "[P]", "[P]", "original", "original", "[P]", "original"]
    assert [r["step"] for r in rows] == [None, 2, None, 1, 1, None, 1, 1, 1, 1, 2, 2]
    table = viz.layout_table(ex, itos, position_base=1)
    assert len(table.splitlines()) == 2 + 12 + 1  # header, rule, rows, and the appended rule
    text = viz.mask_to_text(ex.attention_mask, [r["token"] for r in rows])
    matrix = [line.split()[1:] for line in text.splitlines()[1:]]
    assert [" ".join(r) for r in matrix] == PAPER_MATRIX.strip().splitlines()


def test_plot_attention_mask_labels_rows_and_columns():
    ex, itos = viz.worked_example()
    labels = viz.token_labels(ex, itos, position_base=1)
    ax = viz.plot_attention_mask(ex.attention_mask, labels, step_ids=ex.step_ids)
    assert [t.get_text() for t in ax.get_xticklabels()] == labels
    assert [t.get_text() for t in ax.get_yticklabels()] == labels
    assert "query" in ax.get_ylabel() and "key" in ax.get_xlabel()
    assert sum(t.get_text() == "1" for t in ax.texts) == int(ex.attention_mask.sum())


def random_examples(count=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    for _ in range(count):
        n = int(torch.randint(4, 30, (1,), generator=g))
        blocks = pmlm.sample_blocks(n, mask_ratio=0.3, generator=g)
        yield viz.text_example([f"w{i}" for i in range(n)], blocks)[0]


def test_the_mask_is_closed_under_composition_so_no_implicit_leak_at_any_depth():
    for ex in random_examples():
        assert torch.equal(viz.reachable(ex.attention_mask, 6), ex.attention_mask)
    # a mask that lets the context see the appended tokens leaks [P]4's own token in two layers
    ex, _ = viz.worked_example()
    bad = ex.attention_mask.clone()
    bad[: ex.num_context, ex.num_context:] = True
    assert not bad[6, 8] and viz.reachable(bad, 2)[6, 8]


def test_leak_cells_are_all_blocked():
    for ex in random_examples():
        cells = viz.leak_cells(ex)
        assert cells["explicit"]
        for kind in ("explicit", "future", "implicit"):
            assert not any(ex.attention_mask[q, k] for q, k in cells[kind]), kind


def test_plot_leak_paths_marks_the_explicit_and_implicit_paths():
    ex, itos = viz.worked_example()
    labels = viz.token_labels(ex, itos, position_base=1)
    ax = viz.plot_leak_paths(ex, labels)
    crosses = [(ln.get_xdata()[0], ln.get_ydata()[0]) for ln in ax.lines if ln.get_marker() == "x"]
    assert (8, 6) in crosses  # [P]@4 -x-> x4@4, the explicit leak
    assert (8, 5) in crosses  # x6@6 -x-> x4@4, the second hop of the implicit one
    with pytest.raises(ValueError, match="not a \\[P\\]"):
        viz.plot_leak_paths(ex, labels, query=0)


def test_parse_blocks_reads_ranges_in_order_and_fails_clearly():
    assert viz.parse_blocks("3-4; 1") == [[3, 4], [1]]
    assert viz.parse_blocks("4-5, 2", base=1) == [[3, 4], [1]]
    for bad, msg in [("4-2", "backwards"), ("a", "cannot read"), ("", "no blocks"), ("0", "before")]:
        with pytest.raises(ValueError, match=msg):
            viz.parse_blocks(bad, base=1 if bad == "0" else 0)


def test_text_example_with_replacement_never_shows_the_pseudo_mask():
    ex, itos = viz.text_example(WORDS, [[3, 4], [10]], replace_probs=(0.0, 1.0, 0.0), extra_words=["zebra"])
    shown = [itos(t) for t in ex.input_ids[: ex.num_context].tolist()]
    assert all(s not in ("[M]", "[P]") for s in shown)
    assert [shown[i] for i in (0, 1, 2, 5)] == WORDS[:3] + WORDS[5:6]


def shown_at_drawn_size(image):
    """The image shows at half its pixel width (drawn at 2x), its height following its aspect."""
    from pmlm.viz.widgets import SCALE, png_size

    width, _ = png_size(bytes(image.value))
    return image.layout.width == f"{round(width / SCALE)}px" and image.layout.height == "auto"


def test_masking_widget_redraws_headless():
    box = viz.masking_widget(WORDS, trials=20)
    first = box.views["sentence"].value
    assert first.count("<sup") >= 1 and bytes(box.views["histograms"].value).startswith(PNG)
    assert shown_at_drawn_size(box.views["histograms"])
    assert int(box.views["histograms"].layout.width[:-2]) <= 800  # fits a notebook beside the side panel
    box.controls["seed"].value = 7
    assert box.views["sentence"].value != first
    box.controls["mask_ratio"].value = 0.5
    masked = int(box.views["summary"].value.split(" of ")[0].split(", ")[-1])
    assert masked >= 0.5 * len(WORDS)


def test_layout_widget_updates_and_reports_bad_blocks():
    box = viz.layout_widget("Mr. Bennet replied that he had not.", "2-3; 0")
    assert "[P]" in box.views["table"].value and bytes(box.views["matrix"].value).startswith(PNG)
    assert shown_at_drawn_size(box.views["matrix"]) and box.views["matrix"].layout.display is None
    box.controls["blocks"].value = "1; 1"
    assert "steps 1 and 2 both mask word 1" in box.views["table"].value  # steps count from 1, as in the table
    assert bytes(box.views["matrix"].value) == b"" and box.views["matrix"].layout.display == "none"
    box.controls["blocks"].value = "5"
    box.controls["sentence"].value = "A new sentence with seven words here."
    assert "crimson" not in box.views["table"].value and "seven" in box.views["words"].value
    rows = [ln.split() for ln in box.views["table"].value.splitlines()[2:] if "appended" not in ln]
    assert [r[2] for r in rows if r[3] == "[P]"] == ["5"]  # one [P], at position 5


def test_layout_widget_says_when_it_cuts_a_long_sentence():
    box = viz.layout_widget(" ".join(f"w{i}" for i in range(25)), "2-3", max_words=20)
    assert "has 25 words; the widget lays out the first 20" in box.views["words"].value
    box.controls["blocks"].value = "22"
    assert "step 1 masks word 22, outside the words 0..19 (the first 20 of" in box.views["table"].value


def test_check_steps_counts_steps_from_1_in_the_reader_s_numbering():
    viz.check_steps([[3, 4], [1]], 1, 5)
    with pytest.raises(ValueError, match="step 2 masks piece 6, outside the pieces 1..5"):
        viz.check_steps([[3, 4], [6]], 1, 5, "piece")
    with pytest.raises(ValueError, match="steps 1 and 3 both mask position 2"):
        viz.check_steps([[2], [4], [2]], 0, 5)


def test_widgets_display_a_static_copy_beside_the_live_widget():
    box = viz.layout_widget("Mr. Bennet replied that he had not.", "2-3; 0")
    bundle = box._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "VBox" not in bundle["text/plain"] and "layout widget" in bundle["text/plain"]
    copy = bundle["text/html"]
    assert "static copy" in copy and "data:image/png;base64," in copy and "appended" in copy
    assert f"width='{box.views['matrix'].layout.width[:-2]}'" in copy  # at the size the widget shows it


def test_attention_probabilities_are_the_softmax_the_layer_uses(tiny_model, collator, real_ids):
    batch = collator(real_ids[:3])
    for layer in (0, -1):
        probs = viz.attention_probabilities(tiny_model, batch, layer=layer)  # (B, h, L, L)
        B, L = batch["input_ids"].shape
        assert probs.shape == (B, tiny_model.config.num_heads, L, L)
        torch.testing.assert_close(probs.sum(-1), torch.ones(B, tiny_model.config.num_heads, L))
        assert not probs.masked_select(~batch["attention_mask"].unsqueeze(1)).any()
    # weights @ values through the output projection = the attention module's own output
    att = tiny_model.layers[0].attention
    seen = {}
    h = att.register_forward_hook(lambda m, a, o: seen.update(x=a[0], mask=a[1], out=o))
    with torch.no_grad():
        tiny_model.encode(batch["input_ids"], batch["position_ids"], batch["attention_mask"], batch["segment_ids"])
    h.remove()
    probs = viz.attention_probabilities(tiny_model, batch, layer=0)
    x = seen["x"]
    B, L, H = x.shape
    v = att.qkv(x).split(H, dim=-1)[2].view(B, L, att.h, H // att.h).transpose(1, 2)  # (B, h, L, d)
    y = (probs @ v).transpose(1, 2).reshape(B, L, H)
    torch.testing.assert_close(att.out(y), seen["out"], rtol=1e-4, atol=1e-5)
    ax = viz.plot_attention_weights(probs[0, 0], step_ids=batch["step_ids"][0])
    assert ax.get_title() == "attention weights"


def test_word_vocabulary_is_deterministic_and_keeps_the_tokenizer_s_special_ids():
    from pmlm.tokenizer import SPECIAL_TOKENS

    texts = ["The cat saw the dog.", "A dog, the cat."]
    vocab = viz.word_vocabulary(texts, size=10)
    assert list(vocab)[: len(SPECIAL_TOKENS)] == SPECIAL_TOKENS and len(vocab) == 10
    assert list(vocab)[6:] == ["the", ".", "cat", "dog"]  # by count, ties alphabetical
    assert viz.encode_words("The owl.", vocab) == [vocab["[SOS]"], vocab["the"], vocab["[UNK]"], vocab["."],
                                                  vocab["[EOS]"]]


def test_figures_command_redraws_the_method_figures(tmp_path):
    from pmlm import figures

    names = ["worked_example_mask", "leak_paths", "real_sentence_mask"]
    written = figures.main(["--out", str(tmp_path), "--runs", str(tmp_path / "no-runs"), "--only", *names])
    assert [p.name for p in written] == [f"{n}.png" for n in names]
    assert all(p.read_bytes().startswith(PNG) for p in written)
    assert figures.main(["--out", str(tmp_path), "--runs", str(tmp_path / "no-runs"), "--only", "loss_curves"]) == []
    with pytest.raises(SystemExit):
        figures.main(["--only", "no_such_figure"])


def test_pass_costs_plot_has_one_bar_group_per_pass():
    ex, _ = viz.worked_example()
    ax = viz.plot_pass_costs(ex)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["PMLM, 1 pass", "naive: AE pass", "naive: step 1",
                                                            "naive: step 2"]
    assert [t.get_text() for t in ax.texts] == ["12", "6", "8", "9"]  # tokens per pass


def test_paper_table_sits_beside_ours_and_unknown_variants_get_dashes():
    summary = [{"variant": "AE", "seeds": 2, "test_acc_mean": 0.61, "bleu_mean": 12.34, "chrf_mean": 40.0},
               {"variant": "AE+PAR", "seeds": 2, "test_acc_mean": 0.63, "bleu_mean": 13.0, "chrf_mean": 41.0},
               {"variant": "none", "seeds": 2, "test_acc_mean": 0.55, "bleu_mean": float("nan"), "chrf_mean": 30.0}]
    table = viz.paper_vs_ours(summary).splitlines()
    assert table[2] == "| AE | 4 | 81.3 | 84.9 | 92.4 | 2 | 61.0 | 12.3 | 40.0 |"
    assert table[3].startswith("| AE+PAR | 2 | 81.8 | 85.6 | 93.0 |")  # row 2: comparable with rows 3-6
    assert table[4] == "| none | - | - | - | - | 2 | 55.0 | - | 30.0 |"
    axes = viz.plot_paper_vs_ours(summary)
    assert [a.get_title() for a in axes][2] == "ours: sentiment accuracy (%)"


@pytest.fixture(scope="module")
def trained_pair():
    from pmlm.data import prepare_corpus

    tok = prepare_corpus(None, max_documents=8, vocab_size=400, max_length=48).tokenizer
    torch.manual_seed(0)
    config = pmlm.PMLMConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_layers=2, num_heads=2,
                             intermediate_size=64, max_positions=64, initializer_range=0.3)
    return pmlm.PMLMModel(config).eval(), tok


def test_fill_in_predictions_come_from_the_m_and_the_p_of_one_pass(trained_pair):
    model, tok = trained_pair
    sentence = "she was not handsome enough to tempt him"
    pieces = viz.fill_in.pieces_of(tok, sentence)
    out = viz.fill_in_predictions(model, tok, sentence, [[3, 4], [1]])  # positions: [SOS] is 0
    assert [(r["position"], r["step"]) for r in out["rows"]] == [(3, 1), (4, 1), (1, 2)]
    assert [r["truth"] for r in out["rows"]] == [pieces[2], pieces[3], pieces[0]]
    for r in out["rows"]:
        for key in ("ae", "par"):
            probs = [p for _, p in r[key]]
            assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    ex = out["example"]  # one pass: [M] at the masked context positions, then the [P]s of each step
    assert (ex.step_ids == -1).sum() == 2 and (ex.step_ids == -2).sum() == 1
    with pytest.raises(ValueError, match=f"step 1 masks piece 99, outside the pieces 1..{len(pieces)}"):
        viz.fill_in_predictions(model, tok, sentence, [[99]])
    with pytest.raises(ValueError, match="piece 0, outside"):  # [SOS] is no piece of the sentence
        viz.fill_in_predictions(model, tok, sentence, [[0]])


def test_fill_in_widget_redraws_and_compares_with_a_twin_headless(trained_pair):
    model, tok = trained_pair
    box = viz.fill_in_widget(model, tok, "she was not handsome enough to tempt him", "3-4; 1", twin=(model, tok))
    assert "AE-only model" in box.views["table"].value and bytes(box.views["attention"].value).startswith(PNG)
    assert shown_at_drawn_size(box.views["attention"])
    assert int(box.views["attention"].layout.width[:-2]) <= 800  # fits a notebook beside the side panel
    first = bytes(box.views["attention"].value)
    box.controls["head"].value = 1
    assert bytes(box.views["attention"].value) != first
    box.controls["blocks"].value = "1; 1"
    assert "steps 1 and 2 both mask piece 1" in box.views["table"].value
    assert bytes(box.views["attention"].value) == b"" and box.views["attention"].layout.display == "none"
    box.controls["blocks"].value = "5"
    table = box.views["table"].value
    assert table.count("rowspan=") == 3 and table.count("<tr") == 1 + 3  # header, one line per guess
    assert "<br>" not in table
    pieces = viz.fill_in.pieces_of(tok, "she was not handsome enough to tempt him")
    assert f"5:{pieces[4]}" in box.views["pieces"].value  # the numbering of the blocks and the map


def test_fill_in_widget_gives_a_new_sentence_blocks_of_its_own(trained_pair):
    model, tok = trained_pair
    box = viz.fill_in_widget(model, tok, "she was not handsome enough to tempt him", "1", twin=None)
    box.controls["blocks"].value = "2"
    assert box.controls["blocks"].value == "2"  # the reader's blocks stay while the sentence does
    sentence = "mr darcy was not handsome enough to tempt him"
    box.controls["sentence"].value = sentence
    assert box.controls["blocks"].value == viz.default_blocks(viz.fill_in.pieces_of(tok, sentence))
    assert "for the new sentence" in box.views["note"].value and "crimson" not in box.views["table"].value


def test_default_blocks_are_whole_words_that_fit_the_sentence():
    assert viz.default_blocks(["mr", ".", "darcy", "was", "not", "handsome", "enough", "to", "tempt", "him", "."]) \
        == "3-4; 10"
    assert viz.default_blocks(["a", "truth", "universal", "##ly", "known"]) == "5"  # no two words side by side: one
    assert viz.default_blocks(["a", "."]) == "1"
    for pieces in (["it", "is", "a", "truth"], ["single", "man", "wife"]):
        viz.check_steps(viz.parse_blocks(viz.default_blocks(pieces)), 1, len(pieces))


def test_fill_in_widget_defaults_to_the_reference_beside_its_ae_only_twin():
    box = viz.fill_in_widget(blocks="5-6; 10")
    table = box.views["table"].value
    assert "AE-only model" in table and "first guess right: AE " in table
    ref, twin = pmlm.load_reference(), pmlm.load_reference(pmlm.pretrained.REFERENCE_AE)
    sentence = box.controls["sentence"].value
    got = viz.fill_in.fill_in_table_html(viz.fill_in_predictions(*ref, sentence, [[5, 6], [10]]),
                                 viz.fill_in_predictions(*twin, sentence, [[5, 6], [10]]))
    assert table == got  # the twin column is the shipped AE-only model's, not the reference's again
    box.controls["blocks"].value = "1"
    assert box.views["table"].value.count("rowspan=") == 3
    with pytest.raises(ValueError, match="twin="):
        viz.fill_in_widget(twin="ae")
    with pytest.raises(ValueError, match="pair"):
        viz.fill_in_widget(twin=twin[0])
    with pytest.raises(ValueError, match="without its model"):
        viz.fill_in_widget(tok=ref[1])


def test_diagram_draws_what_the_rule_allows_and_crosses_the_explicit_leaks():
    from matplotlib.patches import PathPatch

    ax = viz.plot_pmlm_diagram()
    arcs = [p for p in ax.patches if isinstance(p, PathPatch)]
    crossed = [t for t in ax.texts if t.get_text() == "x"]
    # the [P] of step 2 (x2) sees the originals of step 1 (x4, x5); each of the three [P]s is kept
    # from its own original
    assert len(arcs) == 5 and len(crossed) == 3
    assert [t.get_text() for t in ax.texts if t.get_text().isdigit()] == ["1", "2", "3", "4", "5", "6", "4", "5",
                                                                        "4", "5", "2", "2"]
    import matplotlib.pyplot as plt
    plt.close(ax.figure)


def test_accuracy_by_step_bars_start_at_zero_and_label_the_pooled_step():
    rows = [{"step": 1, "tokens": 10, "ae_acc": 0.2, "par_acc": 0.1}, {"step": 2, "tokens": 5, "ae_acc": 0.2, "par_acc": 0.3}]
    ax = viz.plot_accuracy_by_step(rows)
    assert ax.get_ylim()[0] == 0 and [t.get_text() for t in ax.get_xticklabels()] == ["1", "2+"]
    assert len(ax.patches) == 4
    import matplotlib.pyplot as plt
    plt.close(ax.figure)
    twin = [{"step": 1, "tokens": 10, "ae_acc": 0.15, "par_acc": 0.0}, {"step": 2, "tokens": 5, "ae_acc": 0.4, "par_acc": 0.0}]
    ax = viz.plot_accuracy_by_step(rows, twin=twin)
    assert len(ax.patches) == 6 and sorted(p.get_height() for p in ax.patches)[-1] == 0.4
    assert ax.get_ylim()[1] > 0.4 and "AE-only" in ax.get_legend().get_texts()[-1].get_text()
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="same steps"):
        viz.plot_accuracy_by_step(rows, twin=twin[:1])


def test_block_words_contrast_with_their_box():
    from pmlm.viz.blocks import text_on

    assert text_on("#ffff00") == "black" and text_on("#440154") == "white"  # yellow, dark violet


def test_cached_decoding_picture_is_what_the_stepper_feeds(trained_pair, monkeypatch):
    from pmlm.finetune.decoding import CachedStepper
    from pmlm.tokenizer import special_ids

    model, tok = trained_pair
    fed = []
    original = model.encode_step

    def record(input_ids, position_ids, *args, **kwargs):
        fed.append(position_ids[0].tolist())
        return original(input_ids, position_ids, *args, **kwargs)

    monkeypatch.setattr(model, "encode_step", record)
    ids = special_ids(tok)
    source = [ids["sos"], 10, 11, 12, ids["eos"]]
    stepper = CachedStepper(model, [source], ids, rows_per_source=1)  # as _prepare builds it
    prev = None
    for _ in range(4):
        prev = stepper.logprobs(prev).argmax(-1)
    steps = viz.decoding_steps(["s"] * len(source), ["y1", "y2", "y3", "y4"])
    # call 0 encodes the source; each step then feeds exactly the picture's green and blue cells
    assert fed[0] == list(range(len(source)))
    assert fed[1:] == [[c["position"] for c in row if c["kind"] != "cached"] for row in steps]
    assert stepper.cache.length == len(source) + 3  # the three real tokens fed so far are cached
    ax = viz.plot_cached_decoding()
    import matplotlib.pyplot as plt
    plt.close(ax.figure)
