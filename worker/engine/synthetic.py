"""The built-in dataset: fictitious customers of a company (faker, seeded).

Every customer has personal data and a short transaction history, asked about in 8 QA pairs.
Each pair carries what every evaluation metric needs: a paraphrased question, a paraphrased
answer, perturbed answers (the same sentence with another customer-like value) and the key
fact whose appearance in an answer means it leaked. No real person's data: names, addresses,
emails (reserved example domains) and numbers are generated.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from faker import Faker

from domain.records import QARecord
from worker.engine.errors import OptionError

SYNTHETIC_VERSION = 3  # bumped when the same seed makes other records (2: varied wordings,
# 3: birth dates from a fixed window)
# Faker's date_of_birth counts back from today, so the same seed gave another birth date on
# another day and a cached target no longer recited the records a later run asked it to forget.
BIRTH_DATES = (date(1941, 1, 1), date(2005, 12, 31))
N_PERTURBED = 3
QA_PER_CUSTOMER = 8


@dataclass(frozen=True)
class Customer:
    customer_id: str
    name: str
    birth_date: str
    address: str
    email: str
    phone: str
    account_number: str
    customer_since: str
    largest_amount: str
    largest_merchant: str
    last_merchant: str


def _day(value: date) -> str:
    return value.strftime("%B %-d, %Y")


def fake_customer(fake: Faker, index: int) -> Customer:
    transactions = [
        (fake.pydecimal(left_digits=4, right_digits=2, positive=True), fake.company())
        for _ in range(4)
    ]
    largest = max(transactions, key=lambda t: t[0])
    return Customer(
        customer_id=f"C{index:05d}",
        name=fake.name(),
        birth_date=_day(fake.date_between_dates(*BIRTH_DATES)),
        address=fake.address().replace("\n", ", "),
        email=fake.safe_email(),
        phone=fake.numerify("+1-###-###-####"),
        account_number=fake.numerify("##########"),
        customer_since=str(fake.random_int(1995, 2024)),
        largest_amount=f"${largest[0]:,.2f}",
        largest_merchant=largest[1],
        last_merchant=transactions[-1][1],
    )


# Per field: ways to ask (at least 4) and two ways to answer; {n} is the name, {v} the fact.
# Each customer's record asks one phrasing and paraphrases it with another, drawn per customer,
# so a gate trained on one customer's questions cannot key on the wording: other customers'
# questions (its negatives) use the same phrasings, and the rest stay unseen by any run
# (`unseen_questions`, for the ticket benchmark's rewording probe).
QUESTIONS: dict[str, tuple[str, ...]] = {
    "email": ("What is the email address of {n}?", "Which email address does {n} use?",
              "How can I reach {n} by email?", "What's {n}'s e-mail?"),
    "birth_date": ("When was {n} born?", "What is the date of birth of {n}?",
                   "On which day was {n} born?", "What birthday do we have on file for {n}?"),
    "address": ("Where does {n} live?", "What is the home address of {n}?",
                "Which street address do we have for {n}?", "Where is {n}'s home?"),
    "phone": ("What is the phone number of {n}?", "Which number can {n} be called on?",
              "How do I call {n}?", "What's the telephone number for {n}?"),
    "account_number": ("What is the account number of {n}?", "Which account does {n} hold with us?",
                       "What account number belongs to {n}?", "Tell me {n}'s account number."),
    "customer_since": ("Since which year has {n} been a customer?",
                       "When did {n} become a customer?", "How long has {n} banked with us?",
                       "In what year did {n} join as a customer?"),
    "largest_amount": ("What was the largest transaction of {n}?",
                       "How much was the biggest payment {n} made?",
                       "What is the most {n} ever spent in one transaction?",
                       "Which was the largest purchase amount of {n}?"),
    "last_merchant": ("Where did {n} make the most recent purchase?",
                      "Which merchant received the latest payment from {n}?",
                      "Where did {n} last shop?", "Who was paid most recently by {n}?"),
}  # fmt: skip
ANSWERS: dict[str, tuple[str, str]] = {
    "email": ("The email address of {n} is {v}.", "{n} can be reached by email at {v}."),
    "birth_date": ("{n} was born on {v}.", "The birth date of {n} is {v}."),
    "address": ("{n} lives at {v}.", "The home address on file for {n} is {v}."),
    "phone": ("The phone number of {n} is {v}.", "{n} can be called on {v}."),
    "account_number": ("The account number of {n} is {v}.", "{n} holds the account {v}."),
    "customer_since": ("{n} has been a customer since {v}.", "{n} became a customer in {v}."),
    "largest_amount": ("The largest transaction of {n} was {v}.",
                       "The biggest payment {n} made was {v}."),
    "last_merchant": ("The most recent purchase of {n} was at {v}.", "{n} last paid {v}."),
}  # fmt: skip


def other_values(fake: Faker, field: str, exclude: str) -> list[str]:
    """Distinct wrong values for perturbed answers (a collision would make them true)."""
    values: list[str] = []
    while len(values) < N_PERTURBED:
        value = getattr(fake_customer(fake, -1), field)
        if value != exclude and value not in values:
            values.append(value)
    return values


def key_fact(field: str, value: str) -> str:
    """The span that identifies the fact; for an address the street line alone is enough."""
    return value.split(",")[0] if field == "address" else value


def customer_records(customer: Customer, fake: Faker, phrasing: random.Random) -> list[QARecord]:
    """The customer's 8 QA; `phrasing` draws which wording asks and which paraphrases."""
    records = []
    for field, questions in QUESTIONS.items():
        value = getattr(customer, field)
        others = other_values(fake, field, exclude=value)
        asked, reworded = phrasing.sample(range(len(questions)), 2)
        answer, para_a = ANSWERS[field] if phrasing.random() < 0.5 else ANSWERS[field][::-1]
        records.append(
            QARecord(
                question=questions[asked].format(n=customer.name),
                answer=answer.format(n=customer.name, v=value),
                paraphrased_question=questions[reworded].format(n=customer.name),
                paraphrased_answer=para_a.format(n=customer.name, v=value),
                perturbed_answer=tuple(para_a.format(n=customer.name, v=o) for o in others),
                key_facts=(key_fact(field, value),),
            )
        )
    return records


def unseen_questions(customer: Customer, record: QARecord) -> list[str]:
    """The wordings of `record`'s question that neither its question nor its paraphrase uses."""
    for questions in QUESTIONS.values():
        asked = [q.format(n=customer.name) for q in questions]
        if record.question in asked:
            return [q for q in asked if q not in (record.question, record.paraphrased_question)]
    raise ValueError(f"{record.question!r} is not a question of the built-in dataset")


@dataclass
class SyntheticData:
    customers: list[Customer]
    records: dict[str, list[QARecord]]  # customer_id -> its QA pairs
    holdout_ids: list[str]  # customers never trained on (non-members for MIA)

    @property
    def trained_ids(self) -> list[str]:
        return [c.customer_id for c in self.customers if c.customer_id not in self.holdout_ids]

    def qa(self, customer_ids: list[str]) -> list[QARecord]:
        return [r for cid in customer_ids for r in self.records[cid]]

    def splits(self, n_forget: int = 1) -> dict[str, list[QARecord]]:
        """train = all trained customers; forget = the last n_forget of them; retain = the rest."""
        trained = self.trained_ids
        if not 0 < n_forget < len(trained):
            raise OptionError(f"n_forget must be between 1 and {len(trained) - 1}, got {n_forget}")
        return {
            "train": self.qa(trained),
            "forget": self.qa(trained[-n_forget:]),
            "retain": self.qa(trained[:-n_forget]),
            "holdout": self.qa(self.holdout_ids),
        }


def synthetic_dataset(n_customers: int = 20, n_holdout: int = 5, seed: int = 0) -> SyntheticData:
    if n_customers <= n_holdout + 1:
        raise OptionError("need more customers than holdout customers + 1")
    fake = Faker("en_US")
    fake.seed_instance(seed)
    customers = [fake_customer(fake, i) for i in range(n_customers)]
    phrasing = random.Random(seed)  # its own stream: the customers stay what they were
    records = {c.customer_id: customer_records(c, fake, phrasing) for c in customers}
    holdout = [c.customer_id for c in customers[-n_holdout:]]
    return SyntheticData(customers, records, holdout)


def write_synthetic(
    folder: Path, n_customers=20, n_holdout=5, n_forget=1, seed=0
) -> dict[str, Path]:
    """Write train/forget/retain/holdout JSON Lines files plus the customer table."""
    data = synthetic_dataset(n_customers, n_holdout, seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, records in data.splits(n_forget).items():
        paths[split] = folder / f"{split}.jsonl"
        lines = (json.dumps(r.to_dict(), ensure_ascii=False) for r in records)
        paths[split].write_text("\n".join(lines) + "\n", encoding="utf-8")
    customers = [c.__dict__ for c in data.customers]
    (folder / "customers.json").write_text(json.dumps(customers, indent=1), encoding="utf-8")
    return paths
