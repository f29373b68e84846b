"""Drugs: the embedded formulary, which drugs an admission gets (indication-driven
probabilities) and their PRESCRIPTIONS orders.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from safellm.data.synthetic.batch import Batch, Stay, in_icu_stays
from safellm.data.synthetic.numeric import Arr, floor_day, lognormal, rank_in_group, secs
from safellm.data.synthetic.vocab import CI, CONDS


class Drug(NamedTuple):
    key: str
    drug: str
    poe: str
    generic: str
    formulary: str
    strength: str
    dose: str
    unit: str
    form_val: str
    form_unit: str
    route: str
    dtype: str
    early: bool  # usually started on the admission day
    days: float  # typical order length (days); 0 = until discharge
    hr: str  # high-risk class: "anticoag", "insulin", "opioid" or ""
    po_home: bool  # continued at discharge (listed in the discharge summary)


DRUGS: tuple[Drug, ...] = (
    Drug("HEP_SC", "Heparin", "Heparin", "Heparin Sodium", "HEPA5I", "5000 Units / mL- 1mL Vial",
          "5000", "UNIT", "1", "mL", "SC", "MAIN", True, 0, "", False),
    Drug("ENOX_PR", "Enoxaparin Sodium", "Enoxaparin Sodium", "Enoxaparin Sodium", "ENOX40I",
          "40mg / 0.4 mL Syringe", "40", "mg", "0.4", "mL", "SC", "MAIN", True, 0, "", False),
    Drug("HEP_DRIP", "Heparin Sodium", "", "", "HEPPREMIX", "25000 unit Premix Bag", "25000",
          "UNIT", "1", "BAG", "IV", "MAIN", True, 3, "anticoag", False),
    Drug("ENOX_TX", "Enoxaparin Sodium", "Enoxaparin Sodium", "Enoxaparin Sodium", "ENOX80I",
          "80mg / 0.8 mL Syringe", "80", "mg", "0.8", "mL", "SC", "MAIN", False, 0, "anticoag",
          True),
    Drug("WARF", "Warfarin", "Warfarin", "Warfarin", "WARF5", "5mg Tablet", "5", "mg", "1", "TAB",
          "PO", "MAIN", False, 0, "anticoag", True),
    Drug("INS_SS", "Insulin", "Insulin", "Insulin - Sliding Scale", "INSULIN",
          "Dummy Package for Sliding Scale", "0", "UNIT", "0", "VIAL", "SC", "MAIN", True, 0,
          "insulin", False),
    Drug("INS_GLAR", "Insulin Glargine", "Insulin Glargine", "Insulin Glargine", "GLAR100I",
          "100 Units / mL - 10mL Vial", "20", "UNIT", "0.2", "mL", "SC", "MAIN", True, 0, "insulin",
          True),
    Drug("MORPH", "Morphine Sulfate", "Morphine Sulfate", "Morphine Sulfate", "MORP2I",
          "2mg Carpuject", "2", "mg", "1", "SYR", "IV", "MAIN", True, 2, "opioid", False),
    Drug("HYDRO", "HYDROmorphone (Dilaudid)", "HYDROmorphone (Dilaudid)", "HYDROmorphone",
          "HYDR2I", "2mg/mL Carpuject", "0.5", "mg", "0.25", "mL", "IV", "MAIN", False, 3, "opioid",
          False),
    Drug("OXY", "OxycoDONE (Immediate Release) ", "OxycoDONE (Immediate Release) ", "Oxycodone",
          "OXYC5", "5mg Tablet", "5", "mg", "1", "TAB", "PO", "MAIN", False, 4, "opioid", True),
    Drug("FENT", "Fentanyl Citrate", "Fentanyl Citrate", "Fentanyl Citrate", "FENT2I",
          "100mcg/2mL Amp", "25", "mcg", "0.5", "mL", "IV", "MAIN", True, 2, "opioid", False),
    Drug("FURO_IV", "Furosemide", "Furosemide", "Furosemide", "FURO40I", "40mg/4mL Vial", "40",
          "mg", "1", "VIAL", "IV", "MAIN", True, 3, "", False),
    Drug("FURO_PO", "Furosemide", "Furosemide", "Furosemide", "FURO20", "20mg Tablet", "20", "mg",
          "1", "TAB", "PO", "MAIN", False, 0, "", True),
    Drug("NOREPI", "Norepinephrine", "Norepinephrine", "Norepinephrine Bitartrate", "NORE4I",
          "4mg Vial", "0.06", "mcg/kg/min", "1", "VIAL", "IV DRIP", "MAIN", True, 2, "", False),
    Drug("VANC", "Vancomycin", "Vancomycin", "Vancomycin HCl", "VANC1F", "1g Frozen Bag", "1000",
          "mg", "1", "BAG", "IV", "MAIN", True, 5, "", False),
    Drug("PIPTAZ", "Piperacillin-Tazobactam Na", "Piperacillin-Tazobactam Na",
          "Piperacillin-Tazobactam", "PTZ4F", "4.5 g Frozen Bag", "4.5", "g", "1", "BAG", "IV",
          "MAIN", True, 5, "", False),
    Drug("CTX", "CeftriaXONE", "CeftriaXONE", "CeftriaXONE", "CEFT1I", "1g Vial", "1", "gm", "1",
          "VIAL", "IV", "MAIN", True, 4, "", False),
    Drug("AZITH", "Azithromycin", "Azithromycin", "Azithromycin", "AZIT500I", "500mg Vial", "500",
          "mg", "1", "VIAL", "IV", "MAIN", True, 3, "", False),
    Drug("LEVO", "Levofloxacin", "Levofloxacin", "Levofloxacin", "LEVO750PM",
          "750mg/150mL Premix", "750", "mg", "1", "BAG", "IV", "MAIN", True, 5, "", False),
    Drug("CEFAZ", "CeFAZolin", "CeFAZolin", "CeFAZolin", "CEFA1I", "1g Vial", "2", "g", "2",
          "VIAL", "IV", "MAIN", True, 1, "", False),
    Drug("METRO", "MetRONIDAZOLE (FLagyl)", "MetRONIDAZOLE (FLagyl)", "MetRONIDAZOLE",
          "METR500PM", "500mg/100mL Premix", "500", "mg", "1", "BAG", "IV", "MAIN", False, 5, "",
          False),
    Drug("ACET", "Acetaminophen", "Acetaminophen", "Acetaminophen", "ACET325", "325mg Tablet",
          "650", "mg", "2", "TAB", "PO", "MAIN", True, 0, "", False),
    Drug("DOCU", "Docusate Sodium", "Docusate Sodium", "Docusate Sodium", "DOCU100",
          "100mg Capsule", "100", "mg", "1", "CAP", "PO", "MAIN", True, 0, "", False),
    Drug("SENNA", "Senna", "Senna", "Senna", "SENN187", "1 Tablet", "1", "TAB", "1", "TAB", "PO",
          "MAIN", True, 0, "", False),
    Drug("PANTO", "Pantoprazole", "Pantoprazole", "Pantoprazole", "PANT40", "40mg Tablet", "40",
          "mg", "1", "TAB", "PO", "MAIN", True, 0, "", True),
    Drug("FLUSH", "Sodium Chloride 0.9%  Flush", "Sodium Chloride 0.9%  Flush",
          "Sodium Chloride 0.9%  Flush", "NACLFLUSH", "Syringe", "3", "mL", "0.6", "SYR", "IV",
          "MAIN", True, 0, "", False),
    Drug("NS", "0.9% Sodium Chloride", "", "", "NS1000", "1000mL Bag", "1000", "mL", "1", "BAG",
          "IV", "BASE", True, 1, "", False),
    Drug("KCL", "Potassium Chloride", "Potassium Chloride", "Potassium Chloride", "KCL20PM",
          "20mEq/50mL Premix", "40", "mEq", "2", "BAG", "IV", "MAIN", False, 1, "", False),
    Drug("MAG", "Magnesium Sulfate", "Magnesium Sulfate", "Magnesium Sulfate", "MAG2PM",
          "2 g / 50 mL Premix Bag", "2", "gm", "1", "BAG", "IV", "MAIN", False, 1, "", False),
    Drug("METOP", "Metoprolol Tartrate", "Metoprolol Tartrate", "Metoprolol Tartrate", "METO25",
          "25mg Tablet", "25", "mg", "1", "TAB", "PO", "MAIN", False, 0, "", True),
    Drug("LISIN", "Lisinopril", "Lisinopril", "Lisinopril", "LISI10", "10mg Tablet", "10", "mg",
          "1", "TAB", "PO", "MAIN", False, 0, "", True),
    Drug("ATORVA", "Atorvastatin", "Atorvastatin", "Atorvastatin", "ATOR40", "40mg Tablet", "40",
          "mg", "1", "TAB", "PO", "MAIN", False, 0, "", True),
    Drug("ASA", "Aspirin", "Aspirin", "Aspirin", "ASA81", "81mg Tab", "81", "mg", "1", "TAB", "PO",
          "MAIN", True, 0, "", True),
    Drug("CLOPI", "Clopidogrel Bisulfate", "Clopidogrel Bisulfate", "Clopidogrel Bisulfate",
          "CLOP75", "75mg Tablet", "75", "mg", "1", "TAB", "PO", "MAIN", False, 0, "", True),
    Drug("ALBUT", "Albuterol 0.083% Neb Soln", "Albuterol 0.083% Neb Soln",
          "Albuterol 0.083% Neb Soln", "ALBU3H", "0.083%;3mL Vial", "1", "NEB", "1", "VIAL", "IH",
          "MAIN", True, 0, "", False),
    Drug("IPRA", "Ipratropium Bromide Neb", "Ipratropium Bromide Neb", "Ipratropium Bromide Neb",
          "IPRA2H", "2.5mL Vial", "1", "NEB", "1", "VIAL", "IH", "MAIN", True, 0, "", False),
    Drug("PRED", "PredniSONE", "PredniSONE", "PredniSONE", "PRED10", "10mg Tablet", "40", "mg",
          "4",
          "TAB", "PO", "MAIN", True, 5, "", True),
    Drug("LACTU", "Lactulose", "Lactulose", "Lactulose", "LACT30L", "30mL UD Cup", "30", "mL", "1",
          "UDCUP", "PO", "MAIN", False, 0, "", True),
    Drug("RIFAX", "Rifaximin", "Rifaximin", "Rifaximin", "RIFA550", "550mg Tablet", "550", "mg",
          "1", "TAB", "PO", "MAIN", False, 0, "", True),
    Drug("SEVEL", "Sevelamer Carbonate", "Sevelamer Carbonate", "Sevelamer Carbonate", "SEVE800",
          "800mg Tablet", "800", "mg", "1", "TAB", "PO", "MAIN", False, 0, "", True),
    Drug("EPO", "Epoetin Alfa", "Epoetin Alfa", "Epoetin Alfa", "EPOE10I", "10000 Units/mL Vial",
          "10000", "UNIT", "1", "mL", "SC", "MAIN", False, 3, "", False),
    Drug("AMIO", "Amiodarone HCl", "Amiodarone HCl", "Amiodarone HCl", "AMIO200", "200mg Tablet",
          "200", "mg", "1", "TAB", "PO", "MAIN", False, 0, "", True),
    Drug("DILT", "Diltiazem", "Diltiazem", "Diltiazem", "DILT30", "30mg Tablet", "30", "mg", "1",
          "TAB", "PO", "MAIN", False, 0, "", True),
    Drug("METF", "MetFORMIN (Glucophage)", "MetFORMIN (Glucophage)", "MetFORMIN", "METF500",
          "500mg Tablet", "500", "mg", "1", "TAB", "PO", "MAIN", False, 0, "", True),
    Drug("ONDAN", "Ondansetron", "Ondansetron", "Ondansetron", "ONDA4I", "2mg/mL-2mL Vial", "4",
          "mg", "2", "mL", "IV", "MAIN", False, 2, "", False),
    Drug("PROPO", "Propofol", "Propofol", "Propofol", "PROP100IG", "1000mg/100mL Vial", "10",
          "mcg/kg/min", "1", "VIAL", "IV DRIP", "MAIN", True, 3, "", False),
    Drug("FESO4", "Ferrous Sulfate", "Ferrous Sulfate", "Ferrous Sulfate", "FESO4",
          "325mg Tablet", "325", "mg", "1", "TAB", "PO", "MAIN", False, 0, "", True),
    Drug("LEVOTHY", "Levothyroxine Sodium", "Levothyroxine Sodium", "Levothyroxine Sodium",
          "LEVO50", "50mcg Tablet", "50", "mcg", "1", "TAB", "PO", "MAIN", True, 0, "", True),
    Drug("SERTR", "Sertraline", "Sertraline", "Sertraline", "SERT50", "50mg Tablet", "50", "mg",
          "1", "TAB", "PO", "MAIN", False, 0, "", True),
    Drug("THIAM", "Thiamine", "Thiamine", "Thiamine HCl", "THIA100", "100mg Tablet", "100", "mg",
          "1", "TAB", "PO", "MAIN", True, 0, "", True),
    Drug("LORAZ", "Lorazepam", "Lorazepam", "Lorazepam", "LORA1I", "2mg/mL Vial", "1", "mg", "0.5",
          "mL", "IV", "MAIN", False, 2, "", False),
    Drug("DEXA", "Dexamethasone", "Dexamethasone", "Dexamethasone", "DEXA4", "4mg Tablet", "4",
          "mg", "1", "TAB", "PO", "MAIN", False, 0, "", True),
    Drug("AMP", "Ampicillin Sodium", "Ampicillin Sodium", "Ampicillin Sodium", "AMP500I",
          "500mg Vial", "50", "mg/kg", "1", "VIAL", "IV", "MAIN", True, 2, "", False),
    Drug("GENT", "Gentamicin", "Gentamicin", "Gentamicin Sulfate", "GENT20I", "20mg/2mL Vial", "4",
          "mg/kg", "1", "VIAL", "IV", "MAIN", True, 2, "", False),
    Drug("HEPB", "Hepatitis B Vaccine", "Hepatitis B Vaccine", "Hepatitis B Vaccine", "HEPBVAC",
          "10mcg/0.5mL Syringe", "0.5", "mL", "1", "SYR", "IM", "MAIN", True, 1, "", False),
    Drug("VITK", "Phytonadione", "Phytonadione", "Phytonadione", "PHYT1I", "1mg/0.5mL Amp", "1",
          "mg", "0.5", "mL", "IM", "MAIN", True, 1, "", False),
)  # fmt: skip
DI = {d.key: i for i, d in enumerate(DRUGS)}
HR_CLASSES = ("anticoag", "insulin", "opioid")


def select_drugs(rng: np.random.Generator, F: dict[str, Arr]) -> Arr:
    """Bool matrix (admissions x drugs) from indication-driven probabilities."""
    m = len(F["nb"])
    f = {k: np.asarray(v, dtype=float) for k, v in F.items()}
    ad, nb, icu = f["adult"], f["nb"], f["icu"]
    ther = np.clip(f["warf"] * 0.85 + f["ami"] * 0.5 + f["ARRHY"] * 0.1, 0, 1)
    p = np.zeros((m, len(DRUGS)))

    def set_(k: str, v: Arr | float) -> None:
        p[:, DI[k]] = np.clip(v, 0.0, 1.0)

    u = rng.random(m)
    on_ther = rng.random(m) < ther
    set_("HEP_DRIP", ad * on_ther * np.where(f["ami"] > 0, 1.0, 0.4))
    set_("WARF", ad * on_ther * f["warf"])
    set_("ENOX_TX", ad * on_ther * (1 - f["warf"]) * 0.3)
    proph = ad * (1 - on_ther)
    set_("HEP_SC", proph * (u < 0.6))
    set_("ENOX_PR", proph * ((u >= 0.6) & (u < 0.85)))
    set_("INS_SS", ad * (0.25 + 0.7 * f["DIAB"] + 0.25 * icu))
    set_("INS_GLAR", ad * f["DIAB"] * (0.25 + 0.6 * f["diab1"]))
    set_("MORPH", ad * (0.12 + 0.5 * f["surgical"] + 0.15 * f["ami"]))
    set_("HYDRO", ad * (0.08 + 0.45 * f["surgical"] + 0.1 * f["METS"]))
    set_("OXY", ad * (0.1 + 0.5 * f["surgical"] + 0.2 * f["METS"]))
    set_("FENT", ad * (0.05 + 0.6 * f["vent"]))
    set_("FURO_IV", ad * (0.12 + 0.85 * f["chf_exac"] + 0.2 * f["CHF"] + 0.3 * f["cardiac_surg"]))
    set_("FURO_PO", ad * (0.04 + 0.6 * f["CHF"]))
    set_("NOREPI", ad * (0.02 + 0.9 * f["shock"] + 0.05 * icu * (f["sev"] > 1.5)))
    set_("VANC", ad * (0.08 + 0.85 * f["sepsis"] + 0.35 * f["pneu"]) + nb * 0.05)
    set_("PIPTAZ", ad * (0.03 + 0.75 * f["sepsis"] + 0.25 * f["pneu"]))
    set_("CTX", ad * (0.03 + 0.6 * f["pneu"] + 0.4 * f["uti"]))
    set_("AZITH", ad * 0.55 * f["pneu"])
    set_("LEVO", ad * (0.03 + 0.2 * f["pneu"] + 0.2 * f["COPD"] * f["copd_exac"]))
    set_("CEFAZ", ad * (0.05 + 0.9 * f["surgical"]))
    set_("METRO", ad * (0.02 + 0.3 * f["sepsis"] + 0.6 * (f["surgical"] * f["METS"])))
    set_("ACET", ad * 0.75 + nb * 0.1)
    set_("DOCU", ad * 0.6)
    set_("SENNA", ad * 0.5)
    set_("PANTO", ad * (0.4 + 0.55 * f["gib"]))
    set_("FLUSH", ad * 0.7)
    set_("NS", ad * 0.6 + nb * 0.3)
    set_("KCL", ad * (0.3 + 0.2 * icu))
    set_("MAG", ad * (0.25 + 0.2 * icu))
    set_("METOP", ad * (0.15 + 0.5 * f["CAD"] + 0.4 * f["ARRHY"] + 0.5 * f["ami"]))
    set_("LISIN", ad * (0.1 + 0.35 * f["HTN"] + 0.3 * f["CHF"]) * (1 - f["aki"]))
    set_("ATORVA", ad * (0.05 + 0.6 * f["HLD"] + 0.5 * f["CAD"] + 0.4 * f["ami"]))
    set_("ASA", ad * (0.1 + 0.7 * f["CAD"] + 0.8 * f["ami"] + 0.3 * f["stroke"]))
    set_("CLOPI", ad * (0.8 * f["ami"] + 0.3 * f["stroke"]))
    set_("ALBUT", ad * (0.1 + 0.8 * f["COPD"] + 0.3 * f["pneu"]))
    set_("IPRA", ad * (0.05 + 0.7 * f["COPD"]))
    set_("PRED", ad * (0.02 + 0.8 * f["copd_exac"]))
    set_("LACTU", ad * 0.75 * f["LIVER"])
    set_("RIFAX", ad * 0.45 * f["LIVER"])
    set_("SEVEL", ad * f["RENAL"] * (0.2 + 0.6 * f["esrd"]))
    set_("EPO", ad * f["RENAL"] * (0.1 + 0.5 * f["esrd"]))
    set_("AMIO", ad * (0.25 * f["ARRHY"] + 0.3 * f["cardiac_surg"]))
    set_("DILT", ad * 0.3 * f["ARRHY"])
    set_("METF", ad * f["DIAB"] * (1 - f["diab1"]) * (1 - f["RENAL"]) * 0.4)
    set_("ONDAN", ad * (0.15 + 0.3 * f["surgical"] + 0.3 * f["METS"]))
    set_("PROPO", ad * 0.85 * f["vent"])
    set_("FESO4", ad * (0.03 + 0.4 * f["ANEMIA"] + 0.2 * f["gib"]))
    set_("LEVOTHY", ad * 0.95 * f["HYPOTHY"])
    set_("SERTR", ad * 0.5 * f["DEPRESS"])
    set_("THIAM", ad * (0.02 + 0.85 * f["ALCOHOL"]))
    set_("LORAZ", ad * (0.05 + 0.5 * f["ALCOHOL"] + 0.1 * f["vent"]))
    set_("DEXA", ad * (0.02 + 0.8 * f["brain_mets"]))
    set_("AMP", nb * 0.4)
    set_("GENT", nb * 0.38)
    set_("HEPB", nb * 0.8)
    set_("VITK", nb * 0.9)
    return rng.random((m, len(DRUGS))) < p


def admission_drugs(
    rng: np.random.Generator, P: dict[str, Arr], s: Stay, los: Arr
) -> tuple[Arr, Arr]:
    """Drugs of each admission (bool matrix) and its number of high-risk drug classes."""
    pat, has, isr = s.pat, s.has, s.isr
    F = {
        "nb": s.nb, "adult": s.adult, "icu": s.icu, "sepsis": s.sepsis, "shock": s.shock,
        "pneu": s.pneu, "uti": s.uti, "aki": s.aki, "vent": s.vent, "gib": s.gib,
        "surgical": s.surgical, "cardiac_surg": s.cardiac_surg, "ami": isr("AMI", "PCI"),
        "stroke": isr("STROKE"), "chf_exac": isr("CHF_EXAC"), "copd_exac": isr("COPD_EXAC"),
        "warf": P["warf"][pat], "esrd": P["esrd"][pat], "los": los, "sev": s.sev,
    }  # fmt: skip
    for c in CONDS:
        F[c.key] = has(c.key)
    F["diab1"] = has("DIAB") & (
        np.array(CONDS[CI["DIAB"]].codes)[P["code"][pat, CI["DIAB"]]] == "25001"
    )
    F["brain_mets"] = has("METS") & (P["code"][pat, CI["METS"]] == 2)
    meds = select_drugs(rng, F)
    hr_count = np.zeros(len(pat))
    for cls in HR_CLASSES:
        cols = [i for i, d in enumerate(DRUGS) if d.hr == cls]
        hr_count += meds[:, cols].any(axis=1)
    return meds, hr_count


def prescriptions(b: Batch, i1: Arr, i2: Arr) -> dict[str, Arr]:
    rng, A = b.rng, b.A
    adm, drug = np.nonzero(A["meds"])
    los = A["los"][adm]
    n_ord = 1 + np.minimum(rng.poisson(np.minimum(los, 30.0) * 0.12), 5)
    adm, drug, los = np.repeat(adm, n_ord), np.repeat(drug, n_ord), np.repeat(los, n_ord)
    k = len(adm)
    first_order = rank_in_group(adm * 1000 + drug) == 0
    early = np.array([d.early for d in DRUGS])[drug]
    days = np.array([d.days for d in DRUGS])[drug]
    start = np.where(early, rng.uniform(0.0, 0.4, k), rng.uniform(0.0, 0.6, k)) * np.where(
        early, 1.0, los
    )
    start = np.where(first_order, start, rng.uniform(0.0, 1.0, k) * los)
    start = np.minimum(start, los)
    dur = np.where(
        days > 0,
        lognormal(rng, np.log(np.maximum(days, 0.5)), 0.5, k),
        np.where(rng.random(k) < 0.7, los, lognormal(rng, np.log(3.0), 0.7, k)),
    )
    end = np.minimum(start + dur, los)
    t_start = A["admittime"][adm] + secs(start)
    t_end = A["admittime"][adm] + secs(end)
    order = np.lexsort((drug, t_start, adm))
    adm, drug, t_start, t_end = adm[order], drug[order], t_start[order], t_end[order]
    in_1, in_2 = in_icu_stays(A, adm, t_start)
    icu = np.where(in_1, i1[adm], np.where(in_2, i2[adm], -1))
    start_day, end_day = floor_day(t_start), floor_day(t_end)
    return {"adm": adm, "drug": drug, "start": start_day, "end": end_day, "icu": icu}
