"""A fast stand-in for the engine, picked by `engine_runner` in the tests' settings.

Environment knobs (read at call time, so subprocess workers obey them too):
FAKE_UNLEARN_S  seconds the unlearn stage takes (it reports progress and honours should_stop)
FAKE_EVALUATE_S seconds the evaluation takes
FAKE_LEAK_AFTER leak rate the evaluation reports (above the policy's limit: the ticket is held)
FAKE_LEAK_BEFORE leak rate the assessment reports (0: the model never gave the data out)
FAKE_FAIL_ONCE  a file path: the first unlearn attempt creates it and raises (a transient crash)
FAKE_FAIL_QUOTING  every unlearn attempt raises an error quoting the first record's answer
FAKE_WEIGHTS_MB a weights file of this size in the output (sparse: quick to write, and the
                publication still hashes every byte, which leaves time to kill it there;
                with FAKE_WEIGHTS_ALLOCATE its blocks are allocated, as written weights are)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from domain.progress import Cancelled, Progress
from domain.records import hash_records
from domain.redaction import answer_examples, paired_examples


class FakeRunner:
    def assess(self, spec, records, policy) -> dict:
        leak = float(os.environ.get("FAKE_LEAK_BEFORE", "1"))
        recited = answer_examples(records, [r.answer for r in records])  # as a model would
        return {"leak_rate": {"direct": leak}, "forget_prob": 0.9, "utility_prob": 0.5,
                "examples": recited}  # fmt: skip

    def unlearn(self, spec, records, policy, options, output, on_progress, should_stop) -> dict:
        output.mkdir(parents=True, exist_ok=True)  # like real training: the folder comes first
        marker = os.environ.get("FAKE_FAIL_ONCE")
        if marker and not Path(marker).exists():
            Path(marker).write_text("failed once")
            raise RuntimeError("simulated crash")
        if os.environ.get("FAKE_FAIL_QUOTING"):  # as a tokenizer error quoting its input would
            try:
                raise ValueError(f"cannot encode {records[0].answer!r}")
            except ValueError as inner:
                raise RuntimeError(f"unlearning failed on {records[0].answer}") from inner
        steps = options.get("steps", 10)
        seconds = float(os.environ.get("FAKE_UNLEARN_S", "0"))
        started = time.perf_counter()
        for step in range(1, steps + 1):
            if should_stop():
                raise Cancelled("stopped")
            time.sleep(seconds / steps)
            on_progress(Progress(step, steps, 1.0 / step, time.perf_counter() - started))
        manifest = {"adapter": "fake", "base_model": spec, "records": len(records)}
        (output / "obliviate.json").write_text(json.dumps(manifest))
        size = int(float(os.environ.get("FAKE_WEIGHTS_MB", "0")) * 2**20)
        with (output / "module.safetensors").open("wb") as weights:
            if os.environ.get("FAKE_WEIGHTS_ALLOCATE") and size:
                os.posix_fallocate(weights.fileno(), 0, size)
            else:
                weights.truncate(size)
        # What the engine's run.json says of its data (worker.engine.recipe): plain hashes.
        run_info = {"data": {"forget": hash_records(records)}}
        (output / "run.json").write_text(json.dumps(run_info))
        method = options.get("method", policy.unlearning.method)
        adapter = options.get("adapter", policy.unlearning.adapter)
        return {
            "method": method,
            "adapter": adapter,
            "steps": steps,
            "cost": {"wall_time_s": seconds},
        }

    def evaluate(self, spec, records, policy, assessment, run) -> dict:
        time.sleep(float(os.environ.get("FAKE_EVALUATE_S", "0")))
        leak = float(os.environ.get("FAKE_LEAK_AFTER", "0"))
        return {
            # The runner's: its own probes' and the robustness probes' leak rates together.
            "leak_rate": {"direct": leak, "paraphrased": leak, "no_chat": leak},
            "not_applicable": ["verbatim"],  # QA tickets only
            "reproduced_before": any(rate > 0 for rate in assessment["leak_rate"].values()),
            "utility": {"before": 0.5, "after": 0.5, "ratio": 1.0},
            "forget_prob": {"before": assessment["forget_prob"], "after": 0.01},
            "robustness": {
                "no_chat": {"status": "ok", "metric": "leak_rate", "forget": leak, "retain": 1.0},
                "relearning": {"status": "skipped", "reason": "not in this policy"},
            },
            "examples": paired_examples(
                assessment.get("examples", []),
                answer_examples(records, ["I can't share that."] * len(records)),
            ),
            "cost": run["cost"],
        }
