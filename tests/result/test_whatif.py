"""What-if edits: token spans dropped, masked or replaced; before and after on one grid."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from attribution.errors import InputError
from attribution.result import TextSide
from attribution.whatif import (
    Edit,
    align_sides,
    apply_edits,
    check_edits,
    compare,
    edited_pair,
    mask_problem,
    token_edit,
)

A = "A man is playing a guitar on stage."
B = "Someone performs music with an instrument."
SIDE_A = TextSide(
    text=A,
    tokens=["[CLS]", "A", "man", "is", "playing", "a", "guitar", "on", "stage", ".", "[SEP]"],
    offsets=[(0, 0), (0, 1), (2, 5), (6, 8), (9, 16), (17, 18), (19, 25), (26, 28), (29, 34), (34, 35), (0, 0)],
    special=[True] + [False] * 9 + [True],
)


def test_edits_round_trip_through_the_url_form() -> None:
    for edit in (Edit("a", 19, 25, "mask"), Edit("a", 9, 16, "drop"), Edit("b", 3, 9, "replace", "lute: a:1-2"),
                 Edit("b", 0, 4, "mask", tokens=2)):  # fmt: skip
        assert Edit.from_param(edit.to_param()) == edit
    for bad in ("a:1-2", "c:1-2:drop", "a:1-2:explode", "a:x-2:drop", "a:1-2:mask:99"):
        with pytest.raises(InputError):
            Edit.from_param(bad)


def test_drop_mask_and_replace_change_only_the_tokens_span() -> None:
    guitar = token_edit(SIDE_A, "a", 6, "mask")
    assert (guitar.start, guitar.end) == (19, 25)
    assert apply_edits(A, [guitar], "[PAD]") == "A man is playing a [PAD] on stage."
    assert apply_edits(A, [token_edit(SIDE_A, "a", 4, "drop")], "[PAD]") == "A man is a guitar on stage."
    assert apply_edits(A, [token_edit(SIDE_A, "a", 8, "drop")], "[PAD]") == "A man is playing a guitar on."
    assert apply_edits(A, [token_edit(SIDE_A, "a", 1, "drop")], "[PAD]") == "man is playing a guitar on stage."
    lute = token_edit(SIDE_A, "a", 6, "replace", "lute")
    both = apply_edits(A, [lute, token_edit(SIDE_A, "a", 2, "mask")], "<pad>")
    assert both == "A <pad> is playing a lute on stage."  # applied right to left, spans stay valid
    assert apply_edits(A, [Edit("a", 19, 25, "mask", tokens=2)], "[PAD]") == "A man is playing a [PAD][PAD] on stage."


def test_bad_edits_are_refused_with_a_reason() -> None:
    with pytest.raises(InputError, match="special or prompt token"):
        token_edit(SIDE_A, "a", 0, "drop")
    with pytest.raises(InputError, match="Type the text"):
        token_edit(SIDE_A, "a", 6, "replace", "  ")
    with pytest.raises(InputError, match="overlap"):
        check_edits(A, B, [Edit("a", 19, 25, "mask"), Edit("a", 20, 22, "drop")])
    with pytest.raises(InputError, match="outside"):
        check_edits(A, B, [Edit("b", 40, 99, "drop")])
    assert edited_pair(A, B, [Edit("b", 17, 22, "replace", "songs")], "[PAD]") == (A, B.replace("music", "songs"))


def test_alignment_marks_removed_added_and_changed_tokens() -> None:
    after = SIDE_A.replace(tokens=["[CLS]", "A", "man", "is", "a", "[PAD]", "on", "stage", "now", ".", "[SEP]"])
    aligned = align_sides(SIDE_A, after)
    by_label = dict(zip(aligned.labels, aligned.status, strict=True))
    assert by_label["playing"] == "removed" and by_label["guitar → [PAD]"] == "changed" and by_label["now"] == "added"
    assert aligned.status.count("same") == 9  # [CLS] A man is a on stage . [SEP]
    assert [i for i, s in zip(aligned.before, aligned.status, strict=True) if s == "added"] == [None]


def test_compare_keeps_the_sum_of_changes_and_mask_is_verified(minilm: Any) -> None:
    from attribution import explain

    before = explain(minilm, A, B, steps=4, pos=False)
    edits = [token_edit(before.a, "a", 6, "mask"), token_edit(before.b, "b", 3, "drop")]
    pad = minilm.tokenizer.pad_token
    after = explain(minilm, *edited_pair(A, B, edits, pad), steps=4, pos=False)
    assert mask_problem(before.a, after.a, edits[:1], pad) is None  # the model sees its pad id there
    assert after.a.tokens[6] == pad and len(after.a) == len(before.a) and len(after.b) == len(before.b) - 1
    comparison = compare(before, after)
    assert comparison.change.sum() == pytest.approx(after.attribution_sum - before.attribution_sum, abs=1e-9)
    assert comparison.score_change == pytest.approx(after.own_score - before.own_score)
    assert "music" in [
        label for label, s in zip(comparison.cols.labels, comparison.cols.status, strict=True) if s == "removed"
    ]
    np.testing.assert_array_equal(comparison.after[:, 3], 0.0)  # the dropped column holds nothing after
    wrong = mask_problem(before.a, after.a, edits[:1], "<pad>")  # a pad string this tokenizer does not have
    assert wrong is not None and "drop or replace" in wrong
