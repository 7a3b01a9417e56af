"""`obliviate demo` end to end on the tiny model: fine-tune, file the ticket with the embedded
service, unlearn, evaluate, decide, show the answers and the audit trail (the README's first
command, on a model the tests can afford)."""

from cli.demo import demo_command


def test_the_demo_tells_the_whole_story(tiny_model_dir, capsys):
    demo_command(model=str(tiny_model_dir), customers=3, epochs=1, seed=0)
    out = capsys.readouterr().out
    assert "Legal files a GDPR Art. 17 ticket" in out
    assert "Ticket state: published" in out or "Ticket state: held" in out  # the decision
    assert "Audit chain verifies: True; data key destroyed: True" in " ".join(out.split())
