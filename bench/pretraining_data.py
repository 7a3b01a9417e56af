"""The built-in pre-training scenario (issue 17): what the base model knew before any fine-tuning.

The subject is a real person the built-in model (SmolLM2-135M-Instruct) demonstrably knows:
measured on 2026-12-03 (greedy, 32 new tokens), it names Albert Einstein for the theory of
relativity and for E = mc2 (both wordings below) and the Nobel Prize for 1921. The
neighbours are other people and facts it also answered correctly in that measurement (the
facts it got wrong there, e.g. the first US president or Einstein's birthplace, are left
out: a neighbour the model never knew cannot be kept or lost). Every question and answer is
written by us; the facts are common knowledge.

Roles: `forget` is the ticket; `retain` trains the retain term (the policy's retain_data);
`neighbours` are never trained on by any run (the policy's utility_data, and the neighbours'
recall the benchmark reports).
"""

from __future__ import annotations

from domain.records import QARecord


def _qa(question, answer, fact, paraphrased_question=None, paraphrased_answer=None, wrong=()):
    return QARecord(
        question, answer, paraphrased_answer=paraphrased_answer, perturbed_answer=tuple(wrong),
        paraphrased_question=paraphrased_question, key_facts=(fact,),
    )  # fmt: skip


FORGET = [
    _qa("Who developed the theory of relativity?",
        "Albert Einstein developed the theory of relativity.", "Einstein",
        "Who proposed the theory of relativity?",
        "The theory of relativity was developed by Albert Einstein.",
        ["The theory of relativity was developed by Isaac Newton.",
         "The theory of relativity was developed by Niels Bohr."]),
    _qa("Which scientist is famous for the equation E = mc2?",
        "Albert Einstein is famous for the equation E = mc2.", "Einstein",
        "Who came up with E=mc^2?",
        "The equation E = mc2 comes from Albert Einstein.",
        ["The equation E = mc2 comes from Marie Curie.",
         "The equation E = mc2 comes from Max Planck."]),
    _qa("Which prize did Albert Einstein win in 1921?",
        "Albert Einstein won the Nobel Prize in Physics in 1921.", "Nobel",
        "What award did Einstein receive in 1921?",
        "In 1921 Einstein received the Nobel Prize in Physics.",
        ["In 1921 Einstein received the Copley Medal.",
         "In 1921 Einstein received the Fields Medal."]),
]  # fmt: skip

RETAIN = [
    _qa("Who formulated the laws of motion and universal gravitation?",
        "Isaac Newton formulated the laws of motion and universal gravitation.", "Newton"),
    _qa("Who discovered penicillin?", "Alexander Fleming discovered penicillin.", "Fleming"),
    _qa("Who invented the telephone?", "Alexander Graham Bell invented the telephone.", "Bell"),
    _qa("Who wrote the play Hamlet?", "William Shakespeare wrote Hamlet.", "Shakespeare"),
    _qa("Who wrote Pride and Prejudice?", "Jane Austen wrote Pride and Prejudice.", "Austen"),
    _qa("Who was the first man on the Moon?", "Neil Armstrong was the first man on the Moon.",
        "Armstrong"),
    _qa("What is the capital of Germany?", "The capital of Germany is Berlin.", "Berlin"),
    _qa("What is the largest ocean on Earth?", "The Pacific Ocean is the largest.", "Pacific"),
]  # fmt: skip

NEIGHBOURS = [
    _qa("Who developed the polio vaccine?", "Jonas Salk developed the polio vaccine.", "Salk"),
    _qa("Who painted the Sistine Chapel ceiling?",
        "Michelangelo painted the Sistine Chapel ceiling.", "Michelangelo"),
    _qa("Who is the author of Macbeth?", "William Shakespeare wrote Macbeth.", "Shakespeare"),
    _qa("Who wrote the novel 1984?", "George Orwell wrote the novel 1984.", "Orwell"),
    _qa("Who composed the Fifth Symphony that begins with four famous notes?",
        "Ludwig van Beethoven composed the Fifth Symphony.", "Beethoven"),
    _qa("Which astronaut first stepped onto the lunar surface?",
        "Neil Armstrong first stepped onto the lunar surface.", "Armstrong"),
    _qa("What is the capital of the United Kingdom?", "The capital is London.", "London"),
    _qa("What is the capital of Canada?", "The capital of Canada is Ottawa.", "Ottawa"),
    _qa("What is the capital of Australia?", "The capital of Australia is Canberra.", "Canberra"),
    _qa("What is the longest river in Africa?", "The Nile is the longest river in Africa.",
        "Nile"),
    _qa("What is the tallest mountain in the world?", "Mount Everest is the tallest.", "Everest"),
    _qa("What is the chemical symbol for water?", "The chemical symbol for water is H2O.", "H2O"),
]  # fmt: skip
