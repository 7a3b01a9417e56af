"""Pure rules: settings refuse development secrets, statutory deadlines, Celery settings for
long jobs, the TOML policy."""

from datetime import UTC, datetime

import pytest

from domain.settings import DEV_SECRET, Settings
from domain.tickets.deadlines import LegalBasis, add_months, due_at, extended_due_at
from worker.celery_app import make_celery
from worker.policy import PolicyError, PublishPolicy, parse_policy, violations


def test_settings_refuse_default_secrets_outside_development():
    with pytest.raises(ValueError, match="OBLIVIATE_SECRET_KEY"):
        Settings(environment="production", data_key="real")
    with pytest.raises(ValueError, match="OBLIVIATE_DATA_KEY"):
        Settings(environment="test", secret_key="real")
    assert Settings(environment="development").secret_key.get_secret_value() == DEV_SECRET
    assert Settings(environment="production", secret_key="a", data_key="b").environment


def test_embedded_default_is_sqlite_under_the_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("OBLIVIATE_HOME", str(tmp_path))
    settings = Settings()
    assert (
        settings.embedded and settings.database_url == f"sqlite:///{tmp_path}/service/obliviate.db"
    )


def test_gdpr_deadline_is_one_calendar_month_extendable_by_two():
    received = datetime(2026, 1, 31, 12, tzinfo=UTC)
    assert due_at(LegalBasis.GDPR_ART17, received) == datetime(2026, 2, 28, 12, tzinfo=UTC)
    extended = extended_due_at(LegalBasis.GDPR_ART17, datetime(2026, 2, 28, 12, tzinfo=UTC))
    assert extended == datetime(2026, 4, 28, 12, tzinfo=UTC)
    assert add_months(datetime(2026, 11, 30, tzinfo=UTC), 3) == datetime(2027, 2, 28, tzinfo=UTC)


def test_ccpa_deadline_is_45_days_and_contracts_cannot_be_extended():
    received = datetime(2026, 3, 1, tzinfo=UTC)
    assert (due_at(LegalBasis.CCPA, received) - received).days == 45
    with pytest.raises(ValueError, match="cannot be extended"):
        extended_due_at(LegalBasis.CONTRACT, received)


def test_celery_is_configured_for_long_jobs():
    settings = Settings(
        broker_url="redis://127.0.0.1:6379/0", job_soft_time_limit_s=100, job_hard_time_limit_s=200
    )
    conf = make_celery(settings).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_soft_time_limit == 100 and conf.task_time_limit == 200
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit


def test_policy_toml_parses_and_rejects_unknown_keys():
    policy = parse_policy(
        '[unlearning]\nmethod = "graddiff"\n[publish]\nmin_utility_ratio = 0.5\n', "p.toml"
    )
    assert policy.unlearning.method == "graddiff" and policy.unlearning.adapter == "grun"
    assert policy.publish.min_utility_ratio == 0.5
    with pytest.raises(PolicyError, match="p.toml.*'stepz'"):
        parse_policy("[unlearning]\nstepz = 3\n", "p.toml")
    with pytest.raises(PolicyError, match="unknown section"):
        parse_policy("[unlearn]\n", "p.toml")


def test_policy_violations_name_each_miss_and_unmeasured_probes():
    policy = PublishPolicy(
        max_leak_rate={"direct": 0.0, "paraphrased": 0.2}, min_utility_ratio=0.9, max_cost_s=10
    )
    evaluation = {"leak_rate": {"direct": 0.5}, "utility": {"ratio": 0.8}, "cost": {"total_s": 20}}
    problems = violations(policy, evaluation)
    assert len(problems) == 4
    assert any("'paraphrased' was not measured" in p for p in problems)
    good = {
        "leak_rate": {"direct": 0.0, "paraphrased": 0.1},
        "utility": {"ratio": 0.95},
        "cost": {"total_s": 5},
    }
    assert violations(policy, good) == []


def test_a_probe_about_records_the_ticket_does_not_have_is_not_held_against_it():
    policy = PublishPolicy()  # direct, paraphrased, no_chat and verbatim limits
    text_ticket = {
        "leak_rate": {"verbatim": 0.0},
        "not_applicable": ["direct", "paraphrased", "no_chat"],
        "utility": {"ratio": 1.0},
    }
    # Before: every text-only ticket was held ("leak rate on probe 'direct' was not measured").
    assert violations(policy, text_ticket) == []
    leaking = {**text_ticket, "leak_rate": {"verbatim": 0.5}}
    assert violations(policy, leaking) == ["leak rate on 'verbatim' is 0.500 > 0.0"]
    # A QA ticket without paraphrases: the probe applies but was not measured, so it holds.
    qa_ticket = {"leak_rate": {"direct": 0.0, "no_chat": 0.0}, "not_applicable": ["verbatim"],
                 "utility": {"ratio": 1.0}}  # fmt: skip
    assert violations(policy, qa_ticket) == ["leak rate on probe 'paraphrased' was not measured"]
