"""What a benchmark runs: model labels, seeds, each run's config, the order of the runs and their dependencies."""

from __future__ import annotations

import copy
import json
import os
import re

from recbole_galrec.errors import ConfigError

# Label -> (RecBole model name, config keys of that variant). A label not listed is a model name itself.
MODEL_LABELS: dict[str, tuple[str, dict]] = {
    "GALRec": ("GALRec", {}),
    "SASRec": ("SASRec", {}),
    "SASRecText": ("SASRecText", {}),  # SASRec whose item table starts from the items' text (this package's)
    # SASRec trained with BPR and one uniform negative per positive: the setting much of the literature cites.
    "SASRec-BPR": (
        "SASRec",
        {
            "loss_type": "BPR",
            "train_neg_sample_args": {
                "distribution": "uniform",
                "sample_num": 1,
                "alpha": 1.0,
                "dynamic": False,
                "candidate_num": 0,
            },
        },
    ),
    "BERT4Rec": ("BERT4Rec", {}),
    "GRU4Rec": ("GRU4Rec", {}),
    "LightGCN": ("LightGCN", {}),
    "Pop": ("Pop", {}),
}
# GALRec with one part switched off each (its ablation: docs/results/ablation/amazon-beauty.md). Not defaults.
NO_CONTRAST = {"lambda1": 0.0, "lambda2": 0.0, "lambda3": 0.0}
ABLATION_LABELS: dict[str, tuple[str, dict]] = {
    "GALRec-paper": ("GALRec", {"external_user_skip": False, "score_start": "random"}),  # the paper's scoring
    "GALRec-noL1": ("GALRec", {"lambda1": 0.0}),
    "GALRec-noL2": ("GALRec", {"lambda2": 0.0}),
    "GALRec-noL3": ("GALRec", {"lambda3": 0.0}),
    "GALRec-noContrast": ("GALRec", NO_CONTRAST),
    "GALRec-noQueue": ("GALRec", {"queue_size": 0}),
    "GALRec-noHops": ("GALRec", {"prompt_num_neighbors": 0}),  # no 2-hop users, no item users in prompts
    "GALRec-noText": ("GALRec", {"item_text_mode": "none", "score_text_weight": 0.0}),
    "GALRec-frozen": ("GALRec", {"llm_tuning": "frozen"}),
    # the same scorer and start, trained the same way, without the language model's term (the backbone never runs)
    "GALRec-noLM": ("GALRec", {"score_residual": False, **NO_CONTRAST}),
}
MODEL_LABELS.update(ABLATION_LABELS)
# What a benchmark runs without --models, in the report's order: the comparison of docs/results/<dataset>.md (GALRec,
# the same scorer without its language model, the text baseline and the baselines GALRec's parts come from).
DEFAULT_MODELS = ["GALRec", "GALRec-noLM", "SASRecText", "SASRec", "GRU4Rec", "LightGCN"]
FIRST_SEED = 2020
MAX_SEED_COUNT = 100  # --seeds=N above this is refused: it is almost surely a seed meant as a list of one
# GALRec's external models, by the benchmark label whose runs provide them.
EXTERNAL_LABELS = ("SASRec", "LightGCN")
# Labels whose runs may give GALRec its external SASRec (--galrec_start): SASRec, or SASRec whose item table
# started from the items' text (the same layers, so the same vectors and frozen encoder).
GALREC_STARTS = ("SASRec", "SASRecText")
# Keys the benchmark sets itself; an override of one of them would be silently lost.
RESERVED_KEYS = {
    "seed": "--seeds",
    "model": "--models",
    "dataset": "--dataset",
    "checkpoint_dir": "the benchmark (OUTPUT/runs/<dataset>/checkpoints/)",
}
# Keys every run gets below the user's overrides: the log is a file, so no progress bars in it.
RUN_DEFAULTS = {"show_progress": False}


# A label with one key set: "GALRec[contrast_tau=0.05]" is GALRec with contrast_tau 0.05, the value read as on the
# command line; its base is any label ("GALRec-noLM[lambda1=0.5]"). Its key wins over the base label's keys.
SETTING_LABEL = re.compile(r"(?P<base>[^\[\]]+)\[(?P<key>\w+)=(?P<value>.*)\]")


def setting_label(base: str, key: str, value) -> str:
    """The label of ``base`` with ``key`` set to ``value``, written so that :func:`resolve_label` reads back
    ``value`` itself (``GALRec[contrast_tau=0.05]``, ``GALRec[item_text_mode=none]``)."""
    text = value if isinstance(value, str) else json.dumps(value)
    if _read_value(key, text) != value:  # a string read as a number on the command line ("0.5") as well
        raise ConfigError(f"{key}={value!r} cannot be written in a label: it would read back as another value.")
    return f"{base}[{key}={text}]"


def _read_value(key: str, text: str):
    from recbole_galrec.cli import parse_overrides

    return parse_overrides([f"--{key}={text}"])[key]


def resolve_label(label: str) -> tuple[str, dict]:
    """The RecBole model name and the extra config of a model label; unknown labels raise ConfigError."""
    setting = SETTING_LABEL.fullmatch(label)
    if setting:
        model, extra = resolve_label(setting["base"])
        return model, {**extra, setting["key"]: _read_value(setting["key"], setting["value"])}
    if label in MODEL_LABELS:
        model, extra = MODEL_LABELS[label]
        return model, copy.deepcopy(extra)
    from recbole_galrec.lookup import known_models

    if label in known_models():
        return label, {}
    raise ConfigError(
        f"Unknown model label '{label}'. Known labels: {', '.join(MODEL_LABELS)}; "
        "any RecBole model name works too, spelt as RecBole spells it (e.g. NARM, Caser, BPR), and any label with "
        "one key set, as in GALRec[contrast_tau=0.05]."
    )


def run_environment(jobs: int, environ: dict[str, str]) -> dict[str, str]:
    """The environment of a run's process when ``jobs`` run side by side: an equal share of the CPU cores as its
    thread count, unless OMP_NUM_THREADS is set already; one run at a time keeps torch's own choice. Left alone,
    torch gives every process a thread a core, and the runs' threads would outnumber the cores and wait on each
    other."""
    if jobs == 1:
        return dict(environ)
    return {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // jobs)), **environ}


def run_config(label: str, overrides: dict, seed: int) -> tuple[str, dict]:
    """The model name and config dict of one run: the run defaults, the common overrides, the label's keys,
    then the seed."""
    model, extra = resolve_label(label)
    return model, {**RUN_DEFAULTS, **overrides, **extra, "seed": seed}


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: a count (``3``: 2020, 2021, 2022) or a comma-separated list (``2020,2024``; one seed is
    written with a trailing comma, ``2020,``)."""
    text = text.strip()
    if "," in text:
        parts = [part.strip() for part in text.split(",")]
        if not all(re.fullmatch(r"\d+", part) for part in parts if part) or not any(parts):
            raise ConfigError(f"--seeds={text}: a list of seeds is whole numbers separated by commas (2020,2024).")
        seeds = [int(part) for part in parts if part]
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"--seeds={text} names a seed twice.")
        return seeds
    if not re.fullmatch(r"\d+", text):
        raise ConfigError(f"--seeds={text}: give a count (3) or a comma-separated list of seeds (2020,2024).")
    count = int(text)
    if count < 1:
        raise ConfigError(f"--seeds must be at least 1, not {count}.")
    if count > MAX_SEED_COUNT:
        raise ConfigError(
            f"--seeds={count} would mean {count:,} runs per model. For the single seed {count}, "
            f"write --seeds={count}, (a trailing comma makes a list); a count is at most {MAX_SEED_COUNT}."
        )
    return [FIRST_SEED + i for i in range(count)]


def check_overrides(overrides: dict) -> None:
    """Refuse overrides of keys the benchmark sets itself."""
    for key, owner in RESERVED_KEYS.items():
        if key in overrides:
            raise ConfigError(f"--{key} cannot be overridden in a benchmark: it is set by {owner}.")


def external_providers(start: str = "SASRec") -> dict[str, str]:
    """GALRec's external model name -> the label whose runs give it: ``start`` (one of :data:`GALREC_STARTS`)
    gives the SASRec vectors, LightGCN its own."""
    if start not in GALREC_STARTS:
        raise ConfigError(
            f"--galrec_start={start}: GALRec's external SASRec comes from one of {', '.join(GALREC_STARTS)}."
        )
    return {"SASRec": start, "LightGCN": "LightGCN"}


def dependencies(label: str, seed: int, labels: list[str], start: str = "SASRec") -> list[tuple[str, int]]:
    """The runs of this benchmark whose checkpoints a run uses: GALRec uses the same seed's ``start`` (SASRec or
    SASRecText) and LightGCN runs when they are among ``labels`` (otherwise it trains its own external models)."""
    if resolve_label(label)[0] != "GALRec":
        return []
    return [(provider, seed) for provider in external_providers(start).values() if provider in labels]


def order_plan(labels: list[str], seeds: list[int], start: str = "SASRec") -> list[tuple[str, int]]:
    """Every (label, seed), label by label in the given order, except that the runs GALRec's external models
    come from (its ``start`` and LightGCN) come first when a label depends on them."""
    needed = {dep for label in labels for dep, _ in dependencies(label, 0, labels, start)}
    providers = [label for label in external_providers(start).values() if label in needed]
    ordered = providers + [label for label in labels if label not in providers]
    return [(label, seed) for label in ordered for seed in seeds]


def run_stem(label: str, seed: int) -> str:
    """File-name stem of one run's files."""
    safe = re.sub(r"[^\w.-]", "_", label)
    return f"{safe}-seed{seed}"
