"""Tiny files in TOFU's formats, for the suite and benchmark tests."""

import json


def qa(i: int) -> dict:
    return {"question": f"What is the email of customer {i}?", "answer": f"c{i}@example.com"}


def perturbed(i: int) -> dict:
    return qa(i) | {
        "paraphrased_answer": f"Customer {i} uses c{i}@example.com.",
        "perturbed_answer": [f"x{i}@example.org", "none", f"c{i + 1}@example.com"],
        "paraphrased_question": f"Which email does customer {i} use?",
    }


def write_tofu(folder, n: int = 3):
    """The real formats: JSON arrays, and JSON Lines for real authors and world facts."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "forget05_perturbed.json").write_text(json.dumps([perturbed(i) for i in range(n)]))
    (folder / "retain_perturbed.json").write_text(
        json.dumps([perturbed(i) for i in range(10, 10 + n)])
    )
    for name in ("real_authors_perturbed.json", "world_facts_perturbed.json"):
        rows = [qa(i) | {"perturbed_answer": [f"y{i}", "z", "w"]} for i in range(20, 20 + n)]
        (folder / name).write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (folder / "holdout05.json").write_text(json.dumps([qa(i) for i in range(30, 30 + n)]))
    return folder


def write_tofu_mini(folder):
    """write_tofu plus a 4000-row full.json: TOFU-mini takes rows 0-399 and 3600-3999."""
    write_tofu(folder)
    rows = [qa(i) for i in range(4000)]
    (folder / "full.json").write_text(json.dumps(rows))
    return folder
