"""``python -m recbole_galrec.analysis representations``: a GALRec checkpoint's hop representations (the paper's
figure 4)::

    python -m recbole_galrec.analysis representations --checkpoint=GALREC.pth [--compare=NO_CONTRAST.pth] \\
        --output=repr/ [--users=N] [--items=N] [--seed=2020] [--projection=gaussian|pca] [--device=cpu]

The checkpoint is rebuilt with its dataset as ``recommend`` rebuilds it (:meth:`Recommender.from_checkpoint`).
For the test users (their prompts as the test sees them) and the items, the model's own passes give the sets of
:data:`~recbole_galrec.analysis.hops.SETS` (users' E0 and E2, items' E0 and E1), and for the positive pairs of
:data:`~recbole_galrec.analysis.hops.PAIRS` (L1: user E0 with user E2; L2: user E0 with the test item's E0; L3:
user E2 with the test item's E1) the model trains its contrastive terms on. On L2-normalised vectors
(:mod:`~recbole_galrec.analysis.measures`): each set's uniformity ``log E exp(-2 ||x - y||^2)`` over pairs of its
members (all pairs up to 5,000 members, else a fixed sample of a million pairs), each pair kind's alignment
``E ||x - y||^2``. Each set is drawn as the density of its angles on the circle after a 2-D projection
(:mod:`~recbole_galrec.analysis.density`). ``--compare`` adds a second checkpoint of the same dataset (e.g. the
benchmark's GALRec-noContrast, lambda1 = lambda2 = lambda3 = 0) as a second row, on the same users and items.

Writes ``OUTPUT/representations.json`` (per checkpoint: settings, each set's size and uniformity, each pair
kind's size and alignment; the projection and pair sampling used) and ``OUTPUT/representations.png``. Files are
named by their base name only (no machine paths).
"""

import argparse
import json
import logging
import os
import sys

import numpy as np
import torch

from recbole_galrec.analysis import density, hops, measures, terms
from recbole_galrec.errors import ConfigError, GALRecError
from recbole_galrec.running.files import write_atomic

logger = logging.getLogger("recbole_galrec.analysis.representations")
SETTINGS = ("lambda1", "lambda2", "lambda3", "contrast_tau", "contrast_dim", "queue_size", "queue_momentum")
SETTINGS_TOO = ("llm_tuning", "prompt_history_len", "prompt_num_neighbors", "item_text_mode", "score_start")
JSON_FILE, PNG_FILE = "representations.json", "representations.png"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_galrec.analysis representations",
        description="Alignment, uniformity and circle densities of a GALRec checkpoint's hop representations.",
    )
    parser.add_argument("--checkpoint", required=True, help="a GALRec run's checkpoint")
    parser.add_argument("--compare", default=None, help="a second GALRec checkpoint of the same dataset")
    parser.add_argument("--output", required=True, help="folder for representations.json and representations.png")
    parser.add_argument("--users", type=int, default=None, help="at most this many test users, drawn at random")
    parser.add_argument("--items", type=int, default=None, help="at most this many items, drawn at random")
    parser.add_argument("--seed", type=int, default=2020, help="seed of the draws and the projection (default 2020)")
    parser.add_argument("--projection", default="gaussian", help="gaussian (default) or pca")
    parser.add_argument("--labels", default=None, help="row labels, comma-separated (default: from the settings)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the checkpoint's, if available)")
    return parser


def check_arguments(args) -> list[str] | None:
    """ConfigError naming the first bad argument (before anything is loaded); the row labels, if given."""
    for name in ("users", "items"):
        value = getattr(args, name)
        if value is not None and value < 2:
            raise ConfigError(f"--{name} must be at least 2 (uniformity needs pairs), got {value}; omit it for all.")
    if args.projection not in density.PROJECTIONS:
        raise ConfigError(f"--projection must be one of {', '.join(density.PROJECTIONS)}, got '{args.projection}'.")
    labels = None
    if args.labels is not None:
        labels = [label.strip() for label in args.labels.split(",")]
        wanted = 2 if args.compare else 1
        if len(labels) != wanted or not all(labels):
            raise ConfigError(f"--labels needs {wanted} non-empty label(s), comma-separated, got '{args.labels}'.")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise ConfigError(f"--output '{args.output}' is a file; give a folder (it is created if missing).")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError("matplotlib is not installed (it draws the figure): pip install -e '.[bench]'.") from None
    return labels


def make_output(folder: str) -> None:
    """Create ``folder`` (after the checkpoints are checked, before the models are loaded); ConfigError unless it
    can be written."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"--output '{folder}' cannot be created ({err.strerror or err}); give another folder."
        ) from None
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"--output '{folder}' is not writable; give another folder.")


def inspect(path: str, flag: str) -> dict:
    """What a checkpoint says about its run, after checking it is a GALRec one that runs its language model."""
    from recbole_galrec.running import checkpoints

    state = checkpoints.load(path)  # a missing, unreadable or foreign file is a message naming it
    config = state["config"]
    name = os.path.basename(path)
    if config["model"] != "GALRec":
        raise ConfigError(
            f"{flag}: '{name}' holds a {config['model']} run, not GALRec: the hop representations (E0, E1, E2) are "
            "GALRec's. Give a GALRec run's checkpoint (named under 'checkpoint' in its result file)."
        )
    settings = config.settings
    if not settings.uses_backbone:
        raise ConfigError(
            f"{flag}: '{name}' is a GALRec run that never runs its language model (score_residual: False and "
            "lambda1-3 = 0, as GALRec-noLM): it has no hop representations. Give a run that uses the language model."
        )
    run = state.get("run") or {}
    return {
        "name": name,
        "dataset": config["dataset"],
        "data": run.get("data") or {},
        "epoch": state.get("epoch"),  # the epoch whose weights the checkpoint holds (-1: before training)
        "best_valid_score": _number(state.get("best_valid_score")),
        "settings": {key: getattr(settings, key) for key in (*SETTINGS, *SETTINGS_TOO)},
        "seed": config["seed"],
    }


def _number(value) -> float | None:
    """``value`` as a finite float (what JSON can hold), else None."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def check_same_data(first: dict, second: dict) -> None:
    """ConfigError unless the ``--compare`` checkpoint was trained on the dataset of ``--checkpoint``."""
    if first["dataset"] != second["dataset"]:
        raise ConfigError(
            f"--compare: '{second['name']}' is a checkpoint of dataset '{second['dataset']}', --checkpoint "
            f"'{first['name']}' of '{first['dataset']}': compare two checkpoints of one dataset (e.g. the "
            "benchmark's GALRec and GALRec-noContrast runs)."
        )
    if first["data"] and second["data"] and first["data"] != second["data"]:
        raise ConfigError(
            f"--compare: '{second['name']}' and '{first['name']}' were trained on different files of dataset "
            f"'{first['dataset']}' (their atomic files' digests differ): compare checkpoints of the same data."
        )


def default_label(info: dict) -> str:
    s = info["settings"]
    return f"λ1-3 = {s['lambda1']:g}, {s['lambda2']:g}, {s['lambda3']:g}"


def choose(tokens: list[str], cap: int | None, seed: int) -> list[str]:
    """``tokens`` (raw ids), or ``cap`` of them drawn at random from ``seed`` in their order."""
    if cap is None or cap >= len(tokens):
        return list(tokens)
    picked = np.sort(np.random.default_rng(seed).choice(len(tokens), cap, replace=False))
    return [tokens[i] for i in picked]


def states_of(path: str, device, users: list[str] | None, items: list[str] | None, args) -> tuple:
    """Rebuild ``path``'s model and data, and compute its hop states for the test users and items named by raw
    ids (None: the draw of ``--users`` / ``--items``). Returns ``(states, users, items)`` (raw ids)."""
    from recbole_galrec.recommend import Recommender
    from recbole_galrec.running.steps import load_data

    recommender = Recommender.from_checkpoint(path, device)
    model, config = recommender.model, recommender.config
    _, _, _, test_data = load_data(config)  # the test split: each user's history before its test item
    test = test_data._dataset
    samples = hops.TestSamples.of(model, test)
    user_tokens = [str(t) for t in test.field2id_token[test.uid_field][samples.users.numpy()]]
    item_tokens = [str(t) for t in test.field2id_token[test.iid_field]]
    users = choose(user_tokens, args.users, args.seed) if users is None else users
    items = choose(item_tokens[1:], args.items, args.seed) if items is None else items  # 0: padding
    row_of = {token: row for row, token in enumerate(user_tokens)}
    id_of = {token: i for i, token in enumerate(item_tokens)}
    missing = [u for u in users if u not in row_of] + [i for i in items if i not in id_of]
    if missing:
        raise ConfigError(
            f"'{os.path.basename(path)}': {len(missing)} of the chosen test users and items are not in its test "
            f"split (e.g. {missing[:3]}): compare checkpoints run with the same data settings."
        )
    rows = torch.tensor([row_of[u] for u in users], dtype=torch.long)
    item_ids = torch.tensor([id_of[i] for i in items], dtype=torch.long)
    logger.info(f"{os.path.basename(path)}: encoding {len(users):,} test users and {len(items):,} items")
    scales = terms.TermScales()
    states = hops.hop_states(model, samples.rows(rows), item_ids, config["device"], scales)
    summary = scales.summary(model)
    shown = ", ".join(f"{name} {value['std_over_items']:.4f}" for name, value in summary["terms"].items())
    logger.info(f"{os.path.basename(path)}: gate {summary['gate']}; score std over items: {shown}")
    return states, users, items, summary


def measure(states: hops.HopStates, seed: int) -> dict:
    sets = {}
    for name, vectors in states.sets().items():
        sets[name] = {"size": vectors.shape[0], "uniformity": measures.uniformity(vectors, seed=seed).to_dict()}
    pairs = {}
    for name, (x, y) in states.pairs().items():
        pairs[name] = {"size": x.shape[0], "alignment": measures.alignment(x, y)}
    return {"sets": sets, "alignment": pairs}


def panels(states: hops.HopStates, record: dict, projection: str, seed: int) -> list[dict]:
    titles = {"user_e0": "user E0", "user_e2": "user E2", "item_e0": "item E0", "item_e1": "item E1"}
    out = []
    for name, vectors in states.sets().items():
        grid, values = density.angle_density(density.angles(density.project(vectors, projection, seed)))
        value = record["sets"][name]["uniformity"]["value"]
        note = f"n = {vectors.shape[0]:,}, uniformity {value:.3f}" if value is not None else "n < 2"
        out.append({"title": titles[name], "grid": grid, "density": values, "note": note})
    return out


def write_json(result: dict, path: str) -> None:
    write_atomic(path, lambda f: f.write(json.dumps(result, indent=2) + "\n"))


def run(args) -> dict:
    labels = check_arguments(args)
    paths = [args.checkpoint] + ([args.compare] if args.compare else [])
    infos = [inspect(path, flag) for path, flag in zip(paths, ("--checkpoint", "--compare"), strict=False)]
    if len(infos) == 2:
        check_same_data(*infos)
    make_output(args.output)
    device = torch.device(args.device) if args.device else None
    users = items = None
    records, rows = [], []
    for index, (path, info) in enumerate(zip(paths, infos, strict=True)):
        states, users, items, score_terms = states_of(path, device, users, items, args)
        label = labels[index] if labels else default_label(info)
        shown = {key: value for key, value in info.items() if key != "data"}  # (the data's digests: compared above)
        role = "checkpoint" if index == 0 else "compare"
        record = {"role": role, "label": label, **shown, **measure(states, args.seed), "score_terms": score_terms}
        records.append(record)
        rows.append({"label": label, "panels": panels(states, record, args.projection, args.seed)})
    result = {
        "command": "representations",
        "dataset": infos[0]["dataset"],
        "test_users": len(users),
        "items": len(items),
        "seed": args.seed,
        "sets": hops.SETS,
        "pairs": hops.PAIRS,
        "score_terms": {
            **terms.TERMS,
            "std_over_items": "mean over the test users of the standard deviation of the user's scores over items",
            "std_of_item_means": "standard deviation over items of their mean score over the test users (shared)",
        },
        "measures": {
            "alignment": "E ||f(x) - f(y)||^2 over a pair kind's pairs, f the L2 normalisation (Wang and Isola 2020)",
            "uniformity": "log E exp(-2 ||f(x) - f(y)||^2) over pairs of distinct members of a set (t = 2)",
            "uniformity_pairs": f"all unordered pairs up to {measures.ALL_PAIRS_UP_TO:,} members, else "
            f"{measures.SAMPLED_PAIRS:,} pairs of distinct members drawn from the seed",
        },
        "projection": {
            "method": args.projection,
            "points": "each set L2-normalised, projected to 2-D, each point put on the unit circle (its angle)",
            "density": f"Gaussian kernel density of the angles, Scott's bandwidth (at least {density.MIN_BANDWIDTH} "
            "rad), wrapped around the circle",
        },
        "checkpoints": records,
    }
    write_json(result, os.path.join(args.output, JSON_FILE))
    density.draw(rows, os.path.join(args.output, PNG_FILE), args.projection)
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S", level=logging.WARNING)
    logging.getLogger("recbole_galrec").setLevel(logging.INFO)
    try:
        result = run(args)
    except GALRecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for record in result["checkpoints"]:
        shown = ", ".join(f"{k} {v['uniformity']['value']:.3f}" for k, v in record["sets"].items() if v["size"] > 1)
        logger.info(f"{record['label']}: uniformity {shown}")
    logger.info(f"written: {os.path.join(args.output, JSON_FILE)}, {os.path.join(args.output, PNG_FILE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
