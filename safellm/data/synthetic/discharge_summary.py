"""NOTEEVENTS discharge summaries: history, results, hospital course, medications, disposition."""

from __future__ import annotations

import random

from safellm.data.synthetic.meds import DRUGS
from safellm.data.synthetic.note_text import (
    DRUG_NAMES,
    Rec,
    deid_date,
    lab_block,
    lab_phrase,
    lab_str,
)
from safellm.data.synthetic.vocab import DIS_WORDS

_COURSE = {
    "SEPSIS": (
        "{He} was admitted to the {cu} with sepsis, started on broad spectrum antibiotics "
        "({abx}) and fluid resuscitated.",
        "On arrival {he} met SIRS criteria with a lactate of {lac}; blood and urine cultures were "
        "sent and {he} was treated with {abx}.",
    ),
    "PNEUMONIA": (
        "Chest x-ray showed a right lower lobe consolidation. {He} was treated for community "
        "acquired pneumonia with {abx}.",
        "{He} presented with fever, productive cough and hypoxia; pneumonia was treated "
        "with {abx}.",
    ),
    "CHF_EXAC": (
        "{He} was volume overloaded on exam and was diuresed with IV furosemide with improvement "
        "in {his} dyspnea.",
        "CHF exacerbation, likely from dietary indiscretion; diuresed with IV lasix, net negative "
        "several liters.",
    ),
    "COPD_EXAC": (
        "{He} was treated for a COPD exacerbation with nebulizers, steroids and antibiotics.",
        "COPD flare treated with prednisone, albuterol and ipratropium nebs.",
    ),
    "GI_BLEED": (
        "{He} presented with melena and a hematocrit drop; {he} was transfused and underwent "
        "endoscopy.",
        "GI bleed: transfused packed red cells, started on IV PPI, GI performed EGD.",
    ),
    "AMI": (
        "{He} ruled in for NSTEMI and was taken to the cardiac catheterization lab.",
        "Troponin was elevated on admission; {he} was started on a heparin drip, aspirin and a "
        "statin and underwent cardiac catheterization.",
    ),
    "STROKE": (
        "MRI confirmed an acute left MCA territory infarct. {He} was monitored in the ICU for "
        "neurologic checks.",
        "Stroke neurology was consulted; {he} was outside the window for tPA.",
    ),
    "AKI": (
        "Acute kidney injury, likely prerenal; {he} was given IV fluids and nephrotoxins were "
        "held.",
        "Creatinine was elevated on admission at {cr}; renal was consulted and {he} was hydrated.",
    ),
    "HIP_FX": (
        "{He} sustained a hip fracture after a mechanical fall and was taken to the OR by "
        "orthopaedics.",
        "Hip fracture s/p fall; underwent ORIF without complication.",
    ),
    "RESP_FAIL": (
        "{He} was intubated for hypoxic respiratory failure and admitted to the {cu}.",
        "Hypoxic respiratory failure requiring mechanical ventilation; weaned and extubated as "
        "tolerated.",
    ),
    "CABG": (
        "{He} was taken to the operating room for coronary artery bypass grafting and "
        "transferred to the CSRU in stable condition.",
        "S/p CABG; extubated post-operatively, chest tubes removed, ambulating with PT.",
    ),
    "VALVE": (
        "{He} underwent aortic valve replacement and was transferred to the CSRU intubated.",
        "S/p AVR; post-operative course notable for brief atrial arrhythmias.",
    ),
    "PCI": (
        "{He} underwent elective cardiac catheterization with placement of a drug eluting stent.",
        "Elective PCI with DES placement; groin site without hematoma.",
    ),
    "JOINT": (
        "{He} underwent elective joint replacement and was monitored overnight in the {cu}.",
        "Joint replacement without complication; pain controlled, cleared by PT.",
    ),
    "COLECTOMY": (
        "{He} underwent hemicolectomy for colon cancer; diet was advanced slowly.",
        "S/p hemicolectomy, return of bowel function on post-operative day 3.",
    ),
    "NEWBORN": (
        "Infant admitted to the NICU for monitoring.",
        "Baby was admitted to the NICU for respiratory monitoring and sepsis evaluation.",
    ),
}
_ALLERGIES = (
    "Patient recorded as having No Known Allergies to Drugs",
    "Penicillins",
    "Sulfa (Sulfonamide Antibiotics)",
    "Codeine",
)
_SOCIAL = (
    "Lives with wife in [**Location (un) 86**].",
    "Lives alone, retired.",
    "Lives with family; former smoker.",
    "Lives at [**Location 1268**] with daughter. No alcohol.",
)
_CONDITION = (
    "stable",
    "Good. Ambulating with assistance.",
    "Hemodynamically stable, tolerating PO.",
    "Mental Status: Clear and coherent.",
)


_FREQ = {"METOP": "BID", "LACTU": "TID", "SEVEL": "TID with meals", "DILT": "QID",
         "OXY": "Q4H:PRN pain", "AMIO": "DAILY", "METF": "BID"}  # fmt: skip


def _an(age: int) -> str:
    return "an" if age in (8, 11, 18) or 80 <= age <= 89 else "a"


def discharge_summary(rnd: random.Random, r: Rec) -> str:
    """The admission's discharge summary (for deaths: up to the death)."""
    rs, he, age = r.reason, r.he, r.age
    lines = [
        f"Admission Date:  {deid_date(r.admit)}              "
        f"Discharge Date:   {deid_date(r.disch)}",
        "",
        f"Date of Birth:  {deid_date(r.dob)}             Sex:   {r.sex}",
        "",
        f"Service: {r.service}",
        "",
        "Allergies:",
        rnd.choice(_ALLERGIES),
        "",
        f"Attending:[**First Name3 (LF) {rnd.randint(100, 9999)}**]",
        "Chief Complaint:",
        rs.complaint,
        "",
        "History of Present Illness:",
    ]
    if r.newborn:
        lines += [
            f"Baby {'boy' if r.male else 'girl'} {r.lastname} is the "
            f"{rnd.choice(('2.1', '2.6', '3.2', '3.5', '3.8'))} kg product of a "
            f"{'preterm' if r.prem else 'term'} gestation born to a {rnd.randint(19, 41)} year "
            f"old G{rnd.randint(1, 4)} mother at [**Hospital1 {rnd.choice((18, 69, 2025))}**].",
            "",
        ]
    else:
        hx = ", ".join(r.conds) or "no significant past medical history"
        title = "Mr." if r.male else "Ms."
        lines += [
            rnd.choice((
                f"{age} yo {r.sex_word} with a history of {hx} who presents with {rs.complaint}.",
                f"{title} {r.lastname} is {_an(age)} {age} year old {r.sex_word} with {hx} who "
                f"was brought to [**Hospital1 18**] with {rs.complaint}.",
                f"This is {_an(age)} {age} year old {r.sex_word} with PMH significant for {hx}, "
                f"admitted with {rs.words}.",
            )),
            "",
            "Past Medical History:",
            *([f"- {c}" for c in r.conds] or ["- none"]),
            "",
            "Social History:",
            rnd.choice(_SOCIAL),
            "",
        ]  # fmt: skip
    lines.append("Pertinent Results:")
    if r.first_time >= 0:
        lines += lab_block(r.first_time, r.first_row)
    if r.last_time >= 0 and r.last_time != r.first_time:
        lines += lab_block(r.last_time, r.last_row)
    course = rnd.choice(_COURSE[rs.key]).format(
        He=he,
        he=he.lower(),
        his="his" if r.male else "her",
        cu=r.cu,
        abx=", ".join(r.abx) or "antibiotics",
        lac=lab_str(r.first_row, "lac", "not measured"),
        cr=lab_str(r.first_row, "cr", "elevated"),
    )
    lines += ["", "Brief Hospital Course:", course]
    if r.icu_days > 0 and not r.newborn:
        lines.append(f"{he} spent {r.icu_days:.1f} days in the {r.cu}.")
    if r.vent and not r.newborn:
        lines.append(
            rnd.choice((
                "Intubated for airway protection and later extubated.",
                "Required mechanical ventilation during the ICU stay.",
            ))
        )  # fmt: skip
    first_lab = lab_phrase(r.first_row, ("cr", "hgb", "wbc"))
    last_lab = lab_phrase(r.last_row, ("cr", "hgb", "bun"))
    if first_lab:
        lines.append(f"Admission labs notable for {first_lab}.")
    if last_lab and r.last_time != r.first_time:
        lines.append(f"Labs prior to discharge: {last_lab}.")
    if r.died:
        lines += [
            rnd.choice((
                f"Despite maximal support {he.lower()} continued to decline. After discussion "
                f"with the family {he.lower()} was made comfort measures only and expired on "
                f"{deid_date(r.disch)}.",
                f"{he} developed worsening shock and multiorgan failure and expired on "
                f"{deid_date(r.disch)}; the family was at the bedside.",
            )),
            "", "Discharge Disposition:", "Expired", "", "Discharge Diagnosis:", rs.words, "",
            "Discharge Condition:", "Expired",
        ]  # fmt: skip
        return "\n".join(lines) + "\n"
    home = [d for d in r.drug_ix if DRUGS[d].po_home][:10]
    lines += ["", "Medications on Admission:"]
    lines += [DRUG_NAMES[d] for d in home[:4]] or ["None"]
    lines += ["", "Discharge Medications:"]
    lines += [
        f"{i + 1}. {DRUG_NAMES[d]} {DRUGS[d].dose} {DRUGS[d].unit} {DRUGS[d].route} "
        f"{_FREQ.get(DRUGS[d].key, 'DAILY')}"
        for i, d in enumerate(home)
    ] or ["None"]
    disp = DIS_WORDS[r.disloc]
    lines += ["", "Discharge Disposition:", disp]
    if disp == "Extended Care":
        lines += ["", "Facility:", f"[**Hospital {rnd.randint(100, 9999)}**]"]
    lines += [
        "", "Discharge Diagnosis:", f"Primary: {rs.words}",
        f"Secondary: {', '.join(r.conds[:6]) or 'none'}", "", "Discharge Condition:",
        rnd.choice(_CONDITION), "", "Followup Instructions:",
        f"Follow up with Dr. [**Last Name (STitle) {rnd.randint(100, 9999)}**] in "
        f"{rnd.choice(('1 week', '2 weeks', '1 month'))}.",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"
