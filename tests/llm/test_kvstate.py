"""Saved KV states: bounded by bytes (least recently used dropped), the longest shared prefix
found, persisted states read back by a new cache, torn or foreign files never trusted."""

from __future__ import annotations

import itertools
from pathlib import Path

from safellm.llm.kvstate import StateCache, common_prefix, read_state, write_state


def test_common_prefix() -> None:
    assert common_prefix((1, 2, 3), (1, 2, 4, 5)) == 2
    assert common_prefix((1, 2), (1, 2, 3)) == 2
    assert common_prefix((), (1,)) == 0
    assert common_prefix((9,), (1,)) == 0


def test_memory_is_bounded_by_bytes_least_recently_used_first() -> None:
    cache = StateCache(max_bytes=250)
    cache.put((1,), b"a" * 100)
    cache.put((2,), b"b" * 100)
    assert cache.get((1,)) is not None  # (1,) is now the most recently used
    cache.put((3,), b"c" * 100)
    assert list(cache.memory) == [(1,), (3,)] and cache.size == 200
    cache.put((4,), b"d" * 300)  # larger than the whole budget: not kept
    assert (4,) not in cache and cache.size == 200


def test_best_is_the_longest_shared_prefix() -> None:
    cache = StateCache(max_bytes=10_000)
    cache.put((1, 2, 3), b"x")
    cache.put((1, 2, 3, 4, 5, 6), b"y")
    cache.put((7, 8), b"z")
    assert cache.best((1, 2, 3, 4, 9)) == (4, (1, 2, 3, 4, 5, 6))
    assert cache.best((1, 2, 9)) == (2, (1, 2, 3))
    assert cache.best((5,)) == (0, None)


def test_persisted_states_are_read_by_a_new_cache(tmp_path: Path) -> None:
    first = StateCache(max_bytes=0, folder=tmp_path)  # no memory at all: disk only
    first.put((5, 6, 7), b"state-bytes", persist=True)
    first.put((8, 9), b"not persisted")
    again = StateCache(max_bytes=1000, folder=tmp_path)
    assert list(again.disk) == [(5, 6, 7)]
    assert again.get((5, 6, 7)) == b"state-bytes"
    assert again.memory[(5, 6, 7)] == b"state-bytes"  # read into memory once
    assert again.get((8, 9)) is None


def test_torn_and_foreign_files_are_ignored(tmp_path: Path) -> None:
    write_state(tmp_path / "a.kv", (1, 2, 3), b"data")
    raw = (tmp_path / "a.kv").read_bytes()
    (tmp_path / "a.kv").write_bytes(raw[:20])  # cut inside the token list
    (tmp_path / "b.kv").write_bytes(b"GGUF not a state")
    write_state(tmp_path / "c.kv", (4,), b"")  # no state bytes
    cache = StateCache(max_bytes=1000, folder=tmp_path)
    assert set(cache.disk) == {(4,)}
    assert cache.get((4,)) is None and not (tmp_path / "c.kv").exists()  # dropped
    assert read_state(tmp_path / "b.kv") is None


def test_prompt_pieces_start_at_paragraphs_and_depend_only_on_what_precedes() -> None:
    """`LlamaEngine._piece_starts` without a model: a detokenizer where token 0 is a blank line.
    Two prompts that share a beginning share its pieces; the question's paragraph starts a
    piece; no piece is longer than `CHUNK`; the last token is a piece of its own."""
    from safellm.llm.local import CHUNK, LlamaEngine

    class Vocab:
        def detokenize(self, toks: list[int]) -> bytes:
            return b".\n\n" if toks == [0] else b" w%d" % toks[0]

    eng = LlamaEngine.__new__(LlamaEngine)
    eng.llm, eng._breaks = Vocab(), {}
    fixed = 5
    patient = [*range(1, 6), *range(10, 10 + 300), 0, *range(20, 40), 0]
    a = [*patient, 7, 8, 9, 11, 12]  # one question
    b = [*patient, 13, 14, 15]  # another
    sa, sb = eng._piece_starts(a, fixed), eng._piece_starts(b, fixed)
    shared = len(patient)
    assert [s for s in sa if s <= shared] == [s for s in sb if s <= shared]
    assert shared in sa and shared in sb  # the question begins a piece
    assert shared - 21 in sa  # so does each paragraph
    assert sa[:2] == [0, fixed] and sa[-1] == len(a) - 1 and sb[-1] == len(b) - 1
    assert all(y - x <= CHUNK for x, y in itertools.pairwise(sa[1:]))
    assert max(y - x for x, y in itertools.pairwise(sa[1:])) == CHUNK
