#!/usr/bin/env bash
# The first numbers from a GPU, in one command: slm trains GPT-2 (124M) for 50 steps
# without and with torch.compile, and nanoGPT's own train.py trains the same shapes
# (batch x 1024 tokens, vocabulary 50304, AdamW, bf16 or fp16 as the GPU allows) on the
# same tokens, so the tokens/s and MFU are comparable at once. None of slm's CUDA paths
# had run on a GPU when this was written (issue 26): paste the output into an issue.
#
#   NANOGPT=~/src/nanoGPT bash bench/gpu_check.sh      # from the repository root
#   STEPS=100 BATCH=16 NANOGPT=... bash bench/gpu_check.sh
#
# NANOGPT is a nanoGPT checkout (git clone https://github.com/karpathy/nanoGPT); without
# it the nanoGPT rows are skipped. Its train.py reads data/<dataset>/train.bin from its
# own folder, so the script links slm's token files (the same uint16 format) there as
# data/slm-gpu-check and removes the link afterwards. MFU is against the GPU's bf16
# peak from slm_train/peak.py (nanoGPT's own "mfu" assumes an A100; it is recomputed).
set -euo pipefail

STEPS=${STEPS:-50}
BATCH=${BATCH:-12}  # nanoGPT's GPT-2 batch: 12 x 1024 tokens per micro-batch
NANOGPT=${NANOGPT:-}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/slm-gpu-check.XXXXXX")
DATA="$WORK/data"
echo "# slm GPU check: $STEPS steps of gpt2 at batch $BATCH x 1024; work folder $WORK"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

# The median tokens/s and MFU of a run's step records after the first 10 steps
# (the first include compilation and warm-up).
summarize() {
  uv run python - "$1" "$2" <<'EOF'
import json, statistics, sys
from pathlib import Path
label, run = sys.argv[1], Path(sys.argv[2])
steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
steps = [r for r in steps if r.get("type") == "step" and r["step"] > 10]
speed = statistics.median(r["tokens_per_s"] for r in steps)
mfu = [r["mfu"] for r in steps if "mfu" in r]
shown = f"{statistics.median(mfu):.1%}" if mfu else "- (GPU not in peak.GPU_PEAK_FLOPS)"
print(f"{label:<28}{speed:>12,.0f} tokens/s   MFU {shown}")
EOF
}

for compile in off on; do
  uv run slm-cli train --preset gpt2 --tokenizer gpt2 --data builtin:bbe --data-dir "$DATA" \
    --model vocab_size=50304 --optimizer adamw --schedule cosine --warmup-steps 10 \
    --lr 6e-4 --min-lr 6e-5 \
    --batch-size "$BATCH" --max-steps "$STEPS" --eval-interval "$STEPS" --eval-batches 2 \
    --sample-tokens 0 --log-interval 1 --compile "$compile" --out "$WORK/slm-$compile" \
    > "$WORK/slm-$compile.log" 2>&1 || { cat "$WORK/slm-$compile.log"; exit 1; }
done

if [[ -n "$NANOGPT" && -f "$NANOGPT/train.py" ]]; then
  link="$NANOGPT/data/slm-gpu-check"
  ln -sfn "$DATA" "$link"
  trap 'rm -f "$link"' EXIT
  dtype=$(uv run python -c "import torch; print('bfloat16' if torch.cuda.is_bf16_supported() else 'float16')")
  for compile in False True; do
    (cd "$NANOGPT" && uv run --project "$OLDPWD" python train.py --dataset=slm-gpu-check \
      --batch_size="$BATCH" --block_size=1024 --gradient_accumulation_steps=1 \
      --max_iters="$STEPS" --lr_decay_iters="$STEPS" --warmup_iters=10 --eval_interval=100000 \
      --eval_iters=2 --log_interval=1 --always_save_checkpoint=False --compile="$compile" \
      --dtype="$dtype" --wandb_log=False --out_dir="$WORK/nanogpt-$compile") \
      > "$WORK/nanogpt-$compile.log" 2>&1 || { cat "$WORK/nanogpt-$compile.log"; exit 1; }
  done
fi

echo
summarize "slm, eager" "$WORK/slm-off"
summarize "slm, compiled" "$WORK/slm-on"
for compile in False True; do
  log="$WORK/nanogpt-$compile.log"
  [[ -f "$log" ]] || { echo "nanoGPT: skipped (set NANOGPT to a nanoGPT checkout)"; break; }
  uv run python - "$log" "$BATCH" "$compile" <<'EOF'
import re, statistics, sys
import torch
from slm_model import GPTModel, get_gpt_config
from slm_train.metrics import flops_per_token
from slm_train.peak import peak_flops
log, batch, compiled = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "True"
times = [float(t) for i, t in re.findall(r"iter (\d+): .*time ([\d.]+)ms", open(log).read())
         if int(i) > 10]
speed = batch * 1024 / (statistics.median(times) / 1000)
with torch.device("meta"):
    model = GPTModel(get_gpt_config("gpt2", vocab_size=50304))
peak = peak_flops(torch.device("cuda"), "bf16")
shown = f"{speed * flops_per_token(model) / peak:.1%}" if peak else "-"
label = f"nanoGPT train.py, {'compiled' if compiled else 'eager'}"
print(f"{label:<28}{speed:>12,.0f} tokens/s   MFU {shown}")
EOF
done
echo "logs: $WORK"
