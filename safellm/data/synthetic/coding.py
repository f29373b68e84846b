"""DIAGNOSES_ICD and PROCEDURES_ICD: ICD-9 codes of each admission, ordered into seq_num."""

from __future__ import annotations

import numpy as np

from safellm.data.synthetic.batch import Batch
from safellm.data.synthetic.codes import DXI, PXI
from safellm.data.synthetic.labs import lab_params, latent
from safellm.data.synthetic.meds import DI
from safellm.data.synthetic.numeric import DAY, Arr, choice, prev_any, rank_in_group
from safellm.data.synthetic.vocab import CI, CONDS, PRIMARY_CANCER, REASON_KEYS, REASONS


class _Coder:
    """Collects (admission, code, priority) triples and orders them into seq_num."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.adm: list[Arr] = []
        self.code: list[Arr] = []
        self.prio: list[Arr] = []

    def add(self, mask: Arr, code: Arr | int, prio: int, p: Arr | float = 1.0) -> None:
        sel = np.asarray(mask, dtype=bool) & (self.rng.random(len(mask)) < p)
        idx = np.flatnonzero(sel)
        c = np.asarray(code)
        self.adm.append(idx)
        self.code.append(
            np.broadcast_to(c, (len(mask),))[idx] if c.ndim else np.full(len(idx), int(c))
        )
        self.prio.append(np.full(len(idx), prio))

    def result(self) -> tuple[Arr, Arr, Arr]:
        adm = np.concatenate(self.adm).astype(np.int64)
        code = np.concatenate(self.code).astype(np.int64)
        prio = np.concatenate(self.prio).astype(np.int64)
        jit = self.rng.random(len(adm))
        order = np.lexsort((jit, prio, adm))
        adm, code = adm[order], code[order]
        key = adm * 100000 + code
        _, first = np.unique(key, return_index=True)
        keep = np.sort(first)
        adm, code = adm[keep], code[keep]
        return adm, code, rank_in_group(adm) + 1


def diagnoses(b: Batch) -> tuple[Arr, Arr, Arr]:
    """DIAGNOSES_ICD rows (admission, DX_CODES index, seq_num): the reason first, then
    complications, lab-driven codes, chronic conditions, history and newborn codes."""
    rng, A, P = b.rng, b.A, b.P
    na = len(A["pat"])
    pat = A["pat"]
    nb = P["nb"][pat]
    reason = A["reason"]
    rk = REASON_KEYS[reason]
    C = _Coder(rng)
    cond_code = np.array(
        [[DXI[c] for c in cond.codes] + [0] * (5 - len(cond.codes)) for cond in CONDS]
    )
    pcode = cond_code[np.arange(len(CONDS))[None, :], P["code"][pat]]  # (na, K) dx index
    # primary diagnosis
    prim = np.array([DXI[r.dx] for r in REASONS])[reason]
    chf_code = pcode[:, CI["CHF"]]
    prim = np.where(
        rk == "CHF_EXAC", np.where(chf_code == DXI["42832"], DXI["42833"], chf_code), prim
    )
    prim = np.where(nb & (rng.random(na) < 0.35), DXI["V3001"], prim)
    hip = rng.random(na) < 0.5
    A["joint_hip"] = hip & (rk == "JOINT")
    prim = np.where(A["joint_hip"], DXI["71535"], prim)
    C.add(np.ones(na, bool), prim, 0)
    sepsis, shock = A["sepsis"], A["shock"]
    C.add(sepsis & (rk != "SEPSIS"), DXI["0389"], 2)
    C.add(sepsis & ~shock, DXI["99591"], 1)
    C.add(shock, DXI["99592"], 1)
    C.add(shock, DXI["78552"], 1)
    C.add(rk == "GI_BLEED", DXI["2851"], 1, 0.6)
    C.add(rk == "HIP_FX", DXI["2851"], 1, 0.3)
    C.add(rk == "AMI", DXI["41401"], 1, 0.7)
    asp = rng.random(na) < 0.1
    C.add(A["pneu"] & ~asp, DXI["486"], 2)
    C.add(A["pneu"] & asp, DXI["5070"], 2)
    C.add(A["uti"], DXI["5990"], 2)
    C.add(A["aki"], DXI["5849"], 2)
    C.add(A["respfail"], DXI["51881"], 2)
    C.add((rk == "CHF_EXAC") | A["pneu"], DXI["5119"], 2, 0.2)
    # electrolyte / haematology codes from the latent day-1 and end-of-stay values
    q = lab_params(A)
    t1 = np.full(na, 0.25)
    na1, k1, hco31 = latent("na", q, t1), latent("k", q, t1), latent("hco3", q, t1)
    C.add(~nb & (na1 < 133), DXI["2761"], 2, 0.8)
    C.add(~nb & (k1 < 3.4), DXI["2768"], 2, 0.7)
    C.add(~nb & (k1 > 5.2), DXI["2767"], 2, 0.7)
    C.add(~nb & (hco31 < 20), DXI["2762"], 2, 0.7)
    C.add(~nb, DXI["27651"], 2, 0.05)
    C.add(~nb & (latent("inr", q, t1) > 1.5) & ~P["warf"][pat], DXI["2869"], 2, 0.6)
    C.add(~nb & (latent("plt", q, t1) < 100), DXI["2875"], 2, 0.6)
    C.add(~nb & (latent("hgb", q, A["los"]) < 8), DXI["2851"], 2, 0.5)
    C.add(~nb & (rng.random(na) < 0.04), DXI["78097"], 3)
    # chronic conditions as coded on this admission
    for j in range(len(CONDS)):
        C.add(A["coded"][:, j], pcode[:, j], 3)
    mets = A["coded"][:, CI["METS"]]
    pc_code = np.array([DXI[c] for c in PRIMARY_CANCER])[P["primary_cancer"][pat]]
    C.add(mets, pc_code, 3, 0.9)
    C.add(A["coded"][:, CI["LIVER"]], DXI["5723"], 3, 0.3)
    # history / status codes
    C.add(P["tobacco"][pat], DXI["3051"], 4, 0.7)
    C.add(~P["tobacco"][pat] & ~nb, DXI["V1582"], 4, 0.1)
    C.add(P["gerd"][pat], DXI["53081"], 4, 0.8)
    C.add(P["warf"][pat], DXI["V5861"], 4, 0.8)
    C.add(A["meds"][:, DI["INS_GLAR"]], DXI["V5867"], 4, 0.7)
    C.add(prev_any(pat, rk == "CABG"), DXI["V4581"], 4, 0.9)
    C.add(prev_any(pat, np.isin(rk, ("PCI", "AMI"))), DXI["V4582"], 4, 0.6)
    C.add(prev_any(pat, rk == "STROKE"), DXI["V1254"], 4, 0.8)
    C.add(~P["male"][pat] & (A["age"] > 65), DXI["73300"], 4, 0.12)
    # newborns
    prem = P["prem"][pat]
    C.add(nb, DXI["V053"], 1, 0.6)
    C.add(nb, DXI["V290"], 1, 0.3)
    C.add(nb, DXI["7746"], 1, 0.25 + 0.4 * prem)
    C.add(nb & prem, DXI["76519"], 1, 0.9)
    C.add(nb, DXI["7706"], 1, 0.1)
    return C.result()


def procedures(b: Batch) -> tuple[Arr, Arr, Arr]:
    """PROCEDURES_ICD rows (admission, PX_CODES index, seq_num) from the reason and the course."""
    rng, A, P = b.rng, b.A, b.P
    na = len(A["pat"])
    pat = A["pat"]
    nb = P["nb"][pat]
    rk = REASON_KEYS[A["reason"]]
    C = _Coder(rng)
    one = np.ones(na, bool)

    def pick(codes: tuple[str, ...], p: tuple[float, ...]) -> Arr:
        return np.array([PXI[c] for c in codes])[choice(rng, na, p)]

    C.add(rk == "CABG", pick(("3615", "3612", "3613"), (0.4, 0.3, 0.3)), 0)
    C.add(rk == "CABG", PXI["3961"], 0, 0.95)
    C.add(rk == "CABG", PXI["8872"], 1, 0.3)
    C.add(rk == "VALVE", pick(("3521", "3522"), (0.6, 0.4)), 0)
    C.add(rk == "VALVE", PXI["3961"], 0, 0.95)
    for key, scale in (("PCI", 1.0), ("AMI", 0.7)):
        sel = rk == key
        C.add(sel, PXI["3722"], 0, 0.9 * scale)
        C.add(sel, PXI["8856"], 0, 0.9 * scale)
        C.add(sel, PXI["0066"], 0, 0.8 * scale)
        C.add(sel, PXI["3607"], 0, 0.75 * scale)
    C.add((rk == "JOINT") & A["joint_hip"], PXI["8151"], 0)
    C.add((rk == "JOINT") & ~A["joint_hip"], PXI["8154"], 0)
    C.add(rk == "HIP_FX", pick(("7915", "7935", "8151"), (0.55, 0.35, 0.1)), 0)
    C.add(rk == "COLECTOMY", pick(("4573", "4575"), (0.6, 0.4)), 0)
    C.add(rk == "GI_BLEED", PXI["4513"], 0, 0.5)
    C.add(rk == "GI_BLEED", PXI["4516"], 0, 0.35)
    icu_days = np.where(
        A["icu"], (A["out1"] - A["in1"] + A["has2"] * (A["out2"] - A["in2"])) / DAY, 0
    )
    vent = A["vent"]
    C.add(vent, PXI["9604"], 1, 0.8)
    C.add(vent & (icu_days < 4), PXI["9671"], 1)
    C.add(vent & (icu_days >= 4), PXI["9672"], 1)
    C.add((rk == "COPD_EXAC") & ~vent, PXI["9390"], 1, 0.3)
    C.add(A["icu"] & ~nb, PXI["3893"], 1, np.clip(0.3 + 0.4 * A["sepsis"] + 0.2 * vent, 0, 1))
    C.add(A["icu"] & ~nb, PXI["3891"], 1, np.clip(0.2 + 0.5 * (rk == "CABG") + 0.2 * vent, 0, 1))
    q = lab_params(A)
    hgb_end = latent("hgb", q, A["los"])
    ptx = np.clip(0.7 * (rk == "GI_BLEED") + 0.25 * np.isin(rk, ("CABG", "VALVE", "HIP_FX"))
                  + 0.4 * (hgb_end < 8), 0, 1)  # fmt: skip
    C.add(~nb, PXI["9904"], 2, ptx)
    C.add(P["esrd"][pat] | (A["aki"] & (A["sev"] > 1.0)), PXI["3995"], 2,
          np.where(P["esrd"][pat], 0.9, 0.3))  # fmt: skip
    C.add(vent & (icu_days > 3) & ~nb, PXI["966"], 2, 0.5)
    C.add(one, PXI["9915"], 2, 0.02 + 0.1 * (rk == "COLECTOMY") + 0.4 * (nb & P["prem"][pat]))
    C.add(np.isin(rk, ("CABG", "VALVE")) | (one & ~nb), PXI["3404"], 2,
          np.where(np.isin(rk, ("CABG", "VALVE")), 0.25, 0.01))  # fmt: skip
    C.add(A["coded"][:, CI["LIVER"]], PXI["5491"], 2, 0.2)
    C.add(vent & (icu_days > 10), PXI["311"], 2, 0.5)
    C.add((rk == "STROKE") & (A["los"] > 7), PXI["4311"], 2, 0.2)
    C.add(A["coded"][:, CI["METS"]], PXI["9925"], 2, 0.08)
    C.add(nb, PXI["9955"], 1, 0.7)
    C.add(nb, PXI["9983"], 1, 0.1 + 0.5 * P["prem"][pat])
    C.add(nb & P["male"][pat], PXI["640"], 1, 0.35)
    C.add(nb & P["prem"][pat], PXI["3893"], 1, 0.4)
    return C.result()
