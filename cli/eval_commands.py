"""`obliviate eval`: evaluate a model on a suite and write eval.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

DEFAULT_MODEL = "smollm2-135m"  # = worker.engine.models.DEFAULT_MODEL, without importing torch

console = Console(stderr=True)  # progress and errors; the summary goes to stdout


def eval_command(
    model: Annotated[
        str, typer.Option("--model", "-m", help="built-in name, HF folder, .gguf, adapter folder")
    ] = DEFAULT_MODEL,
    suite: Annotated[
        str, typer.Option(help="tofu, synthetic, or corpus (passages and knowledge to forget)")
    ] = "tofu",
    split: Annotated[
        str | None, typer.Option(help="tofu: forget01/05/10; synthetic: forgetN (N customers)")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="tofu: the TOFU folder (default $OBLIVIATE_TOFU_DIR or ../shared/data/"
            "tofu); synthetic: a folder written by `obliviate synthetic`; corpus: a folder with "
            "forget, retain and optional knowledge and holdout files (docs/metrics.md)"
        ),
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            help="a retain model's eval.json: enables forget quality, privleak, reference MIA"
        ),
    ] = None,
    output: Annotated[Path, typer.Option(help="where to write eval.json")] = Path("eval.json"),
    fluency_model: Annotated[
        str | None,
        typer.Option(help="the original model: adds each generation's perplexity under it"),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="first N records of every set (quick look only)")
    ] = None,
    max_new_tokens: int = 200,
    generation_batch_size: int = 64,
    token_budget: Annotated[int, typer.Option(help="padded tokens per scoring batch")] = 2048,
    no_chat: Annotated[bool, typer.Option(help="plain `Question:/Answer:` prompts")] = False,
    no_cache: Annotated[bool, typer.Option(help="recompute cached scores/generations")] = False,
    threads: Annotated[
        int | None,
        typer.Option(help="torch CPU threads (1 is faster when other jobs share the cores)"),
    ] = None,
    device: str | None = None,
    precision: Annotated[str, typer.Option(help="auto, bf16, fp16 or fp32")] = "auto",
    probes: Annotated[
        str | None,
        typer.Option(help="robustness probes too: comma-separated names, or all"),
    ] = None,
    probe_reference: Annotated[
        str | None, typer.Option(help="the retain model's spec: the probes' baseline")
    ] = None,
) -> None:
    """Evaluate forgetting, utility, membership inference and fluency; write eval.json."""
    import torch  # imported here so other commands start without the engine

    from domain.records import DataError
    from worker.engine.eval import EvalOptions, evaluate, format_summary, write_eval
    from worker.engine.eval.probes import ProbeError, ProbeOptions, run_suite_probes
    from worker.engine.models import ModelError

    if threads:
        torch.set_num_threads(threads)
    if suite == "corpus":
        write_corpus_eval(model, data_dir, output, max_new_tokens, device, precision)
        return
    options = EvalOptions(
        data_dir=str(data_dir) if data_dir else None,
        limit=limit,
        max_new_tokens=max_new_tokens,
        generation_batch_size=generation_batch_size,
        token_budget=token_budget,
        chat=not no_chat,
        use_cache=not no_cache,
        fluency_model=fluency_model,
        device=device,
        precision=precision,
    )
    try:
        # With probes the model is loaded once and shared; a bad probe name fails first.
        target = probe_target(model, probes, device, precision)
        result = evaluate(
            target, suite, split, reference, options, on_progress=lambda m: console.print(m)
        )
        if probes:
            result["probes"] = run_suite_probes(
                target, suite, split, probes, probe_reference, data_dir=options.data_dir,
                options=ProbeOptions(limit=limit, max_new_tokens=max_new_tokens),
                device=device, precision=precision,
            )  # fmt: skip
    except (DataError, ModelError, ProbeError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    write_eval(output, result)
    typer.echo(format_summary(result))
    console.print(f"wrote {output}")


def write_corpus_eval(model, data_dir, output, max_new_tokens, device, precision) -> None:
    """The corpus suite (`worker/engine/eval/corpus.py`): its own measures, its own eval.json."""
    import json

    from domain.records import DataError
    from worker.engine.eval.corpus import evaluate_corpus
    from worker.engine.models import ModelError, load_model

    if data_dir is None:
        console.print("[red]error:[/red] --suite corpus needs --data-dir (the corpus folder)")
        raise typer.Exit(2)
    try:
        loaded = load_model(model, device=device, precision=precision)
        result = evaluate_corpus(loaded, data_dir, max_new_tokens)
    except (DataError, ModelError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    output.write_text(json.dumps(result, indent=2))
    for name, value in result["summary"].items():
        typer.echo(f"{name:28} {'-' if value is None else f'{value:.3f}'}")
    console.print(f"wrote {output}")


def probe_target(model: str, probes: str | None, device, precision):
    """The spec itself, or with --probes the loaded model (checked names first)."""
    if not probes:
        return model
    from worker.engine.eval.probes import resolve_probes
    from worker.engine.models import load_model

    resolve_probes(probes)
    return load_model(model, device=device, precision=precision)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the `obliviate` app."""
    app.command("eval")(eval_command)
