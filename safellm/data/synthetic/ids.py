"""Global ids (subject_id, hadm_id, icustay_id): affine permutations inside MIMIC's ranges,
sequential beyond them, so that ids look shuffled but never collide across batches."""

from __future__ import annotations

import numpy as np

from safellm.data.synthetic.numeric import Arr

_ID_PRIME = 99991  # ids are an affine permutation modulo this prime, then sequential


def _perm_ids(k: Arr, base: int, overflow_base: int, a: int, b: int) -> Arr:
    k = np.asarray(k, dtype=np.int64)
    inside = base + (a * k + b) % _ID_PRIME
    return np.where(k < _ID_PRIME, inside, overflow_base + k)


class Ids:
    """Global id allocation: affine permutations inside MIMIC's ranges, sequential beyond."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**32 - 1,)))
        ab = rng.integers(1, _ID_PRIME, 6)
        self._ab = [(int(ab[0]), int(ab[1])), (int(ab[2]), int(ab[3])), (int(ab[4]), int(ab[5]))]
        self.n_sub = 0
        self.n_adm = 0
        self.n_icu = 0

    def take(self, n_sub: int, n_adm: int, n_icu: int) -> tuple[Arr, Arr, Arr]:
        (a0, b0), (a1, b1), (a2, b2) = self._ab
        sub = _perm_ids(self.n_sub + np.arange(n_sub), 2, 100_000, a0, b0)
        adm = _perm_ids(self.n_adm + np.arange(n_adm), 100_000, 1_000_000, a1, b1)
        icu = _perm_ids(self.n_icu + np.arange(n_icu), 200_000, 2_000_000, a2, b2)
        self.n_sub += n_sub
        self.n_adm += n_adm
        self.n_icu += n_icu
        return sub, adm, icu
