#!/usr/bin/env bash
# One lent-GPU call; PHASES picks the work. The exact device calls (command + carry) are in docs/gpu.md.
#
#   stage       nothing but carrying .gpu onto a warm machine (for a decoder call that carries .gpuckpt)
#   lite        train the lite network for LITE_S s on CUDA (crop 256, batch LITE_BATCH, distilled from the
#               shipped decoder), export it, then its quality (grid energy too) and flicker on the dev set
#   decoder     continue the full decoder with the temporal regulariser for DEC_S s: from the checkpoint parts
#               in .gpuckpt/ (exact resume) if there, else from the shipped weights (Adam afresh); the new
#               checkpoint comes back in 16 MiB parts
#   trainspeed  training steps/s of each TRAIN_VARIANTS entry (batch, lr scaling, compile), TRAINSPEED_S s each
#   compare     old (shipped) against new (NEW_DECODER) decoder in one run: quality at alpha .25/.5/1 with grid
#               energy, flicker on all six dev videos
#   speed       pytest's CUDA checks, bench of full+lite at 720p/1080p/4K for every uncompiled engine variant,
#               the 720p profiles, `convert` end to end on a generated 1080p clip with audio (PyAV from .whl/),
#               three encoder presets and the per-stage breakdown
#   compiled    bench of the torch.compile variants (inductor max-autotune + CUDA graphs) at 720p and 1080p
#   quality flicker timing   the older phases, on the shipped (or DECODER) weights
#
# Prepare first: python scripts/prepare_gpu_bundle.py [--wheels] [--checkpoint-parts DIR] (-> .gpu/, .whl/,
# .gpuckpt/). What comes back in $OUT (at most 8 files): models.tgz (exported weights + manifests),
# checkpoint.safetensors.partNN + .parts.json (decoder), results.tgz (every phase's JSON and logs),
# images.tgz (sample grids, contact sheets).
# DRY_RUN=1 runs every command on the CPU at toy sizes for seconds (tests/test_gpu_session.py), DATA=folder.
set -u
PHASES=${PHASES:-"speed"}
want() { case " $PHASES " in *" $1 "*) return 0;; esac; return 1; }
OUT=${OUT:-/tmp/out}
DATA=${DATA:-.gpu}
RUNS=${RUNS:-.gpu}        # where the training runs' folders go
CKPT=${CKPT:-.gpuckpt}    # checkpoint parts to resume from (prepare_gpu_bundle.py --checkpoint-parts)
DRY=${DRY_RUN:-0}
R="$OUT/r"
M="$OUT/m"
mkdir -p "$R" "$M"
export PYTHONUNBUFFERED=1
if [ -d .whl ] && ls .whl/*.whl > /dev/null 2>&1; then  # PyAV and pydantic for the device's Python
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
[ -f "$DATA/vgg/vgg_fp16.safetensors" ] && export STYLESTREAM_VGG="$(cd "$DATA/vgg" && pwd)/vgg_fp16.safetensors"
py() { python3 "$@"; }
[ "$DRY" = 1 ] && py() { "${PYTHON:-python3}" "$@"; }

if [ "$DRY" = 1 ]; then  # toy sizes: every command runs, on the CPU, in seconds
  DEV=cpu; TRAIN_SIZE="--crop 32 --load-size 40 --steps ${DRY_STEPS:-2} --batch-size 2"
  # the decoder runs count on from the shipped decoder's steps: DRY_STEPS more than those
  base=$(py -c "import json; print(json.load(open('engines/weights/decoder.json'))['steps'])")
  DEC_SIZE="--crop 32 --load-size 40 --steps $((base + ${DRY_STEPS:-2})) --batch-size 2"
  Q_SIZE="--size 32 --cell 32"; F_SIZE="--size 32 --frames 4 --styles 1 --static 0 --sequences cats"
  RES="64x48"; RES_BIG="64x48"; CLIP="64x48"; CLIP_S=0.5; PROF="48x32"; ITERS="--iters 1 --warmup 0"
  TRAINSPEED_S=${TRAINSPEED_S:-900}  # DRY_STEPS ends these runs, not the clock
  # TorchDynamo without code generation: inductor on a CPU would take minutes
  COMPILED_VARIANTS=${COMPILED_VARIANTS:-eager-dynamo}; PROFILE_COMPILED=${PROFILE_COMPILED:-eager-dynamo}
  TRAIN_VARIANTS=${TRAIN_VARIANTS:---batch-size 2;--batch-size 2 --compile eager}
  MODELS=${MODELS:-full}; PRESETS=${PRESETS:-ultrafast}; COMPILED_MODELS=${COMPILED_MODELS:-full}
else
  DEV=cuda; TRAIN_SIZE=""; DEC_SIZE=""
  Q_SIZE=""; F_SIZE="--sequences cats fox davis_breakdance davis_camel davis_kite-surf davis_parkour"
  RES="1280x720,1920x1080"; RES_BIG="1280x720,1920x1080,3840x2160"; CLIP="1920x1080"; CLIP_S=4; PROF="1280x720"
  ITERS=""; TRAINSPEED_S=${TRAINSPEED_S:-30}; MODELS=${MODELS:-full,lite}
fi
TRAIN_DATA="--content $DATA/train/content --style $DATA/train/style --device $DEV --no-progress --workers 16"
NOTE="scripts/prepare_gpu_bundle.py: ../shared/data/train without the files in noncommercial.txt, shorter side 288, WebP q80"

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  py -c "import torch; print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(0))" 2>&1
} > "$R/machine.txt"
cat "$R/machine.txt"

# limit SECONDS CMD...: timeout on the GPU, none in a dry run
limit() { local s=$1; shift; if [ "$DRY" = 1 ]; then "$@"; else timeout "$s" "$@"; fi; }

if want stage; then  # only brings .gpu onto the machine, for a decoder call right after it that carries .gpuckpt
  du -sh "$DATA"/* > "$R/stage.txt" 2>&1; cat "$R/stage.txt"
fi
for phase in lite trainspeed decoder; do
  if want $phase && [ ! -d "$DATA/train/content" ]; then
    echo "no training data at $DATA/train on this machine: carry .gpu, or stage it in a call just before"; exit 3
  fi
done

if want lite; then
  RUN="$RUNS/run-lite"; mkdir -p "$RUN"
  # shellcheck disable=SC2086
  limit $((${LITE_S:-360} + 120)) py -m streamer.app.cli train --model lite $TRAIN_DATA --out "$RUN" \
    --crop 256 --batch-size "${LITE_BATCH:-16}" --lr-scaling sqrt --lr "${LITE_LR:-5e-4}" \
    --time-limit "${LITE_S:-360}" --steps 1000000 --log-every 100 --checkpoint-every 100000 --sample-every 100000 \
    --data-note "$NOTE" ${LITE_ARGS:-} $TRAIN_SIZE > "$R/lite-train.txt" 2>&1
  echo "lite train exit $?"; tail -2 "$R/lite-train.txt"
  cp "$RUN/lite.safetensors" "$RUN/lite.json" "$M/" 2>/dev/null; cp "$RUN/log.jsonl" "$R/lite-log.jsonl" 2>/dev/null
  ls "$RUN"/samples-*.png 2>/dev/null | tail -1 | xargs -r -I{} cp {} "$R/lite-samples.png"
  # shellcheck disable=SC2086
  limit 120 py -m benchmarks.quality --models full,lite --lite "$RUN/lite.safetensors" --data "$DATA/dev" \
    --device "$DEV" --tag lite-gpu --out "$R" $Q_SIZE > "$R/lite-quality.txt" 2>&1
  echo "lite quality exit $?"; tail -4 "$R/lite-quality.txt"
  # shellcheck disable=SC2086
  limit 200 py -m benchmarks.flicker --model lite --decoder "$RUN/lite.safetensors" --data "$DATA/dev" \
    --device "$DEV" --json "$R/lite-flicker.json" $F_SIZE > "$R/lite-flicker.txt" 2>&1
  echo "lite flicker exit $?"; tail -3 "$R/lite-flicker.txt"
fi

if want trainspeed; then  # TRAIN_VARIANTS: ';'-separated argument sets, each timed for TRAINSPEED_S seconds
  IFS=';' read -ra variants <<< "${TRAIN_VARIANTS:---batch-size 8;--batch-size 16 --lr-scaling sqrt;--batch-size 8 --compile default;--batch-size 16 --lr-scaling sqrt --compile default}"
  i=0
  for v in "${variants[@]}"; do
    i=$((i + 1)); RUN="$RUNS/trainspeed-$i"; rm -rf "$RUN"
    # shellcheck disable=SC2086
    limit $((TRAINSPEED_S + 240)) py -m streamer.app.cli train $TRAIN_DATA --out "$RUN" --init-decoder engines/weights/decoder.safetensors \
      --temporal-weight "${TEMPORAL_WEIGHT:-30}" --time-limit "$TRAINSPEED_S" --steps 10000000 --log-every 25 \
      --checkpoint-every 10000000 --sample-every 10000000 $DEC_SIZE $v > "$R/trainspeed-$i.txt" 2>&1
    echo "trainspeed [$v] exit $?"
    py - "$RUN/log.jsonl" "$v" >> "$R/trainspeed.jsonl" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])] if __import__("os").path.exists(sys.argv[1]) else []
late = rows[len(rows) // 2:] or rows  # after compilation and warm-up
sps = sum(r["steps_per_s"] for r in late) / len(late) if late else None
print(json.dumps({"variant": sys.argv[2], "steps": rows[-1]["step"] if rows else 0, "steps_per_s": sps}))
EOF
    tail -1 "$R/trainspeed.jsonl"
  done
fi

if want decoder; then
  RUN="$RUNS/run-decoder"; mkdir -p "$RUN"
  if [ -f "$CKPT/checkpoint.safetensors.parts.json" ]; then  # exact resume from the last lease's parts
    py -c "from engines.train.parts import merge_checkpoint as m; m('$CKPT/checkpoint.safetensors.parts.json', '$RUN/checkpoint.safetensors')" \
      && start="--resume" || { echo "checkpoint parts do not merge; stopping"; exit 2; }
  else
    start="--init-decoder engines/weights/decoder.safetensors"
  fi
  # shellcheck disable=SC2086
  limit $((${DEC_S:-420} + 240)) py -m streamer.app.cli train $start $TRAIN_DATA --out "$RUN" --load-size 288 \
    --temporal-weight "${TEMPORAL_WEIGHT:-30}" --batch-size "${DEC_BATCH:-8}" ${DEC_ARGS:-} \
    --time-limit "${DEC_S:-420}" --steps 160000 --log-every 200 --checkpoint-every 4000 --sample-every 4000 \
    --data-note "$NOTE" $DEC_SIZE > "$R/decoder-train.txt" 2>&1
  echo "decoder train exit $?"; tail -2 "$R/decoder-train.txt"
  cp "$RUN/decoder.safetensors" "$RUN/decoder.json" "$M/" 2>/dev/null; cp "$RUN/log.jsonl" "$R/decoder-log.jsonl"
  ls "$RUN"/samples-*.png 2>/dev/null | tail -1 | xargs -r -I{} cp {} "$R/decoder-samples.png"
  py -c "from engines.train.parts import split_checkpoint as s; print(*s('$RUN/checkpoint.safetensors', '$OUT'))"
fi
DEC=${DECODER:-engines/weights/decoder.safetensors}

if want compare; then  # old (shipped) against new, same machine, same run
  NEW=${NEW_DECODER:-$RUNS/run-decoder/decoder.safetensors}
  for which in old new; do
    w=$DEC; [ $which = new ] && w=$NEW
    # shellcheck disable=SC2086
    limit 150 py -m benchmarks.quality --models full --decoder "$w" --data "$DATA/dev" --device "$DEV" \
      --tag "$which" --out "$R" $Q_SIZE > "$R/quality-$which.txt" 2>&1
    echo "quality $which exit $?"; tail -3 "$R/quality-$which.txt"
    # shellcheck disable=SC2086
    limit 240 py -m benchmarks.flicker --decoder "$w" --data "$DATA/dev" --device "$DEV" \
      --json "$R/flicker-$which.json" $F_SIZE > "$R/flicker-$which.txt" 2>&1
    echo "flicker $which exit $?"; tail -3 "$R/flicker-$which.txt"
  done
fi

if want speed; then
  if [ "$DRY" != 1 ]; then  # the fp16 tolerance checks of every variant on the device
    limit 240 py -m pytest -q -p no:cacheprovider tests/test_torch_backend.py tests/test_speed_variants.py \
      -k cuda > "$R/cuda-tests.txt" 2>&1; echo "cuda tests exit $?"; tail -2 "$R/cuda-tests.txt"
  fi
  # shellcheck disable=SC2086
  limit 200 py -m streamer.app.cli bench --backends torch --model "$MODELS" --device "$DEV" --resolutions "$RES_BIG" \
    --variants "${SPEED_VARIANTS:-default,fold-padding,nchw,no-cuda-graphs}" --no-convert $ITERS \
    --decoder "$DEC" --out "$R/speed-variants.json" > "$R/speed-variants.txt" 2>&1
  echo "speed variants exit $?"; cat "$R/speed-variants.txt"
  for v in default fold-padding; do
    # shellcheck disable=SC2086
    limit 90 py -m benchmarks.profile_gpu --models "$MODELS" --size "$PROF" --device "$DEV" --variant $v \
      --decoder "$DEC" $ITERS --out "$R" > "$R/profile-$v.txt" 2>&1
    echo "profile $v exit $?"; cat "$R/profile-$v.txt"
  done
  # shellcheck disable=SC2086
  limit 240 py -m streamer.app.cli bench --backends torch --model "$MODELS" --device "$DEV" --resolutions "$CLIP" \
    --variants default --batch "${CONVERT_BATCH:-4}" $ITERS --clip "$CLIP" --clip-seconds "$CLIP_S" \
    --presets "${PRESETS:-medium,veryfast,ultrafast}" --decoder "$DEC" --out "$R/speed-convert.json" \
    > "$R/speed-convert.txt" 2>&1
  echo "convert end to end exit $?"; cat "$R/speed-convert.txt"
fi

if want compiled; then  # torch.compile max-autotune (+ our CUDA graph): one call per size, so a slow compile
  IFS=',' read -ra sizes <<< "$RES"  # costs that size alone
  for res in "${sizes[@]}"; do
    # shellcheck disable=SC2086
    limit "${COMPILE_LIMIT:-200}" py -m streamer.app.cli bench --backends torch --model "${COMPILED_MODELS:-full,lite}" \
      --device "$DEV" --resolutions "$res" --variants "${COMPILED_VARIANTS:-compiled,compiled+fold}" --no-convert \
      $ITERS --decoder "$DEC" --out "$R/speed-compiled-$res.json" > "$R/speed-compiled-$res.txt" 2>&1
    echo "speed compiled $res exit $?"; cat "$R/speed-compiled-$res.txt"
  done
  # shellcheck disable=SC2086
  limit "${COMPILE_LIMIT:-200}" py -m benchmarks.profile_gpu --models full --size "$PROF" --device "$DEV" \
    --variant "${PROFILE_COMPILED:-compiled}" --decoder "$DEC" $ITERS --out "$R" > "$R/profile-compiled.txt" 2>&1
  echo "profile compiled exit $?"; cat "$R/profile-compiled.txt"
fi

if want quality; then
  limit 60 py -m benchmarks.quality --data "$DATA/dev" --decoder "$DEC" --device "$DEV" --out "$R" > "$R/quality.txt" 2>&1
  echo "quality exit $?"; tail -4 "$R/quality.txt"
fi
if want flicker; then
  # shellcheck disable=SC2086
  limit 150 py -m benchmarks.flicker --data "$DATA/dev" --decoder "$DEC" --device "$DEV" --out "$R" $F_SIZE \
    > "$R/flicker.txt" 2>&1
  echo "flicker exit $?"; tail -14 "$R/flicker.txt"
fi
if want timing; then  # the 720p smoothing cost alone: the default, then each ';'-separated TIMING_VARIANTS
  IFS=';' read -ra variants <<< "${TIMING_VARIANTS:-;;--set flow_size=400;--set mechanism=flow}"
  i=0
  for v in "${variants[@]}"; do
    i=$((i + 1))
    # shellcheck disable=SC2086  # $v holds several arguments
    limit 60 py -m benchmarks.flicker --timing-only --data "$DATA/dev" --decoder "$DEC" --device "$DEV" $v \
      --json "$R/timing-$i.json" > "$R/timing-$i.txt" 2>&1
    echo "timing [${v:-default}] exit $?"; tail -2 "$R/timing-$i.txt" | head -1
  done
fi

# At most 8 files come back, 16 MiB each: weights in one archive, images in another, the rest in a third.
[ -n "$(ls "$M")" ] && tar czf "$OUT/models.tgz" -C "$M" .
rm -rf "$M"
(cd "$R" && find . -name '*.png' | tar czf "$OUT/images.tgz" -T - && find . -name '*.png' -delete)
tar czf "$OUT/results.tgz" -C "$OUT" r && rm -rf "$R"
ls -la "$OUT"
