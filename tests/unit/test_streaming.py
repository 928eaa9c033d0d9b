from deal_core.stops import cut_at_stop
from deal_core.streaming import DeltaTracker


def test_split_utf8_character_is_held_until_complete():
    tracker = DeltaTracker()
    assert tracker.update("caf") == "caf"
    assert tracker.update("caf\ufffd") == ""  # half of "é" decoded as a replacement character
    assert tracker.update("café 🙂") == "é 🙂"


def test_stop_string_prefix_is_held_back_and_never_shown():
    tracker = DeltaTracker(stop=["###"])
    assert tracker.update("answer #") == "answer "
    assert tracker.update("answer ##") == ""
    assert tracker.update("answer ###tail", final=True) == ""
    assert tracker.emitted == "answer "


def test_false_alarm_prefix_is_released():
    tracker = DeltaTracker(stop=["END"])
    assert tracker.update("the E") == "the "
    assert tracker.update("the Elephant") == "Elephant"


def test_respacing_never_retracts_shown_text():
    tracker = DeltaTracker()
    assert tracker.update("a b") == "a b"
    assert tracker.update("a  b c") == ""  # disagrees with what was shown: wait
    assert tracker.update("a b c") == " c"


def test_cut_at_stop_takes_the_earliest_stop():
    assert cut_at_stop("one two three", ["three", "two"]) == ("one ", True)
    assert cut_at_stop("one", ["x"]) == ("one", False)


def test_incremental_decoder_equals_decoding_whole(tiny_lm):
    """Token by token, the incremental text is always a prefix of the whole decode, and equal at the end —
    multi-byte characters split across tokens included."""
    from deal_core.streaming import IncrementalDecoder

    for text in ["Hello there, general Kenobi!", "Grüße 🙂 aus Köln — naïve café ✓", "  two  spaces\nand a newline"]:
        ids = tiny_lm.encode_text(text, special_tokens=False)
        inc, calls = IncrementalDecoder(tiny_lm.decode), []
        for n in range(1, len(ids) + 1):
            partial = inc.update(ids[:n])
            calls.append(partial)
            assert tiny_lm.decode(ids[:n]).startswith(partial)
        assert calls[-1] == tiny_lm.decode(ids) == text
