#!/usr/bin/env bash
# One prepared run for a lent GPU: the gridworld base model at a scale the 2-core machine
# cannot reach, then the measures of the scaling curve (benchmarks/diagnostics/scaling_grid.py).
# FAMILY=ant runs the ant's instead (below).
#
#   bash benchmarks/diagnostics/gpu_scale.sh            # on the GPU machine (never run on one yet)
#   DEVICE=cpu STEPS=40 BATCH=16 MILESTONES="20 40" EPISODES=20 CTRL_STEPS=20 VAL_EPISODES=32 \
#       bash benchmarks/diagnostics/gpu_scale.sh        # the same plumbing at toy size, on a CPU
#   FAMILY=ant bash benchmarks/diagnostics/gpu_scale.sh # the ant (docs/results/ant.md)
#   FAMILY=ant DEVICE=cpu ANT_EPISODES=40 STEPS=20 BATCH=8 D_MODEL=16 N_LAYERS=2 D_MLP=32 \
#       EPISODES=4 bash benchmarks/diagnostics/gpu_scale.sh
#
# The data recipe is the one the CPU campaign found best (docs/scaling_grid.md): relabelled
# rollouts of an eps-noisy expert (--stream-relabel --stream-noise 0.2). Pretraining streams
# fresh expert episodes on the host CPUs while the GPU trains (bf16
# autocast on CUDA); evaluation (probes, ground-truth controllers, rollouts) runs on the CPU
# cores. Everything lands in $OUT (default runs/gpu-scale): the run folder with milestones,
# each milestone's scaling.json, the plot and a log. Nothing in the project depends on it.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-python}
DEVICE=${DEVICE:-cuda}
FAMILY=${FAMILY:-grid}
WORKERS=${WORKERS:-$(( $(nproc) / 2 ))}

if [ "$FAMILY" = ant ]; then
  # The ant: relabelled expert data generated on the host's cores first (MuJoCo is too slow to
  # stream to a GPU), then the paper's Hawk (8 x 256, MLP 512) over the heading-frame encoder,
  # the recipe of docs/results/ant.md's last section; probes and closed-loop rollouts after.
  OUT=${OUT:-runs/gpu-scale-ant}
  ANT_EPISODES=${ANT_EPISODES:-20000}
  STEPS=${STEPS:-4000}
  BATCH=${BATCH:-256}
  D_MODEL=${D_MODEL:-256}
  N_LAYERS=${N_LAYERS:-8}
  D_MLP=${D_MLP:-512}
  EPISODES=${EPISODES:-200}
  mkdir -p "$OUT"
  exec > >(tee -a "$OUT/log.txt") 2>&1
  echo "== $(date -u +%FT%TZ) ant device=$DEVICE steps=$STEPS batch=$BATCH d=$D_MODEL L=$N_LAYERS"
  start=$(date +%s)
  $PY -m irl_agents.cli data --env ant --task-set pretrain --episodes "$ANT_EPISODES" --noise 1.0 \
    --relabel --num-envs 400 --env-workers "$WORKERS" --seed 3 --no-progress \
    --out "$OUT/ant-pretrain-relabel.safetensors"
  $PY -m irl_agents.cli data --env ant --task-set pretrain --episodes $(( ANT_EPISODES / 10 )) \
    --noise 0 --num-envs 200 --env-workers "$WORKERS" --seed 2 --no-progress \
    --out "$OUT/ant-pretrain-mean.safetensors"
  echo "== data took $(( $(date +%s) - start )) s"
  start=$(date +%s)
  $PY -m irl_agents.cli pretrain --dataset "$OUT/ant-pretrain-relabel.safetensors" \
    --kind ssm --obs-encoder ant_heading --d-model "$D_MODEL" --n-layers "$N_LAYERS" \
    --d-mlp "$D_MLP" --lambda 1 --lr 1e-3 --lr-schedule cosine --batch-size "$BATCH" \
    --steps "$STEPS" --checkpoint-every $(( STEPS / 4 > 0 ? STEPS / 4 : 1 )) \
    --device "$DEVICE" --no-progress --out "$OUT/run"
  echo "== pretraining took $(( $(date +%s) - start )) s"
  $PY -m irl_agents.cli probe --model "$OUT/run/model" --dataset "$OUT/ant-pretrain-mean.safetensors"
  for mode in "" --greedy; do
    $PY benchmarks/diagnostics/base_rollout.py --model "$OUT/run/model" --episodes "$EPISODES" \
      --env-workers "$WORKERS" $mode
  done
  exit 0
fi

OUT=${OUT:-runs/gpu-scale}
STEPS=${STEPS:-8000}
BATCH=${BATCH:-512}
D_MODEL=${D_MODEL:-256}
N_LAYERS=${N_LAYERS:-6}
D_MLP=${D_MLP:-512}
LR=${LR:-1e-3}
MILESTONES=${MILESTONES:-"500 1000 2000 4000 8000"}
EPISODES=${EPISODES:-300}
VAL_EPISODES=${VAL_EPISODES:-1024}
CTRL_STEPS=${CTRL_STEPS:-2000}
LAYERS=${LAYERS:-"0 1"}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
echo "== $(date -u +%FT%TZ) device=$DEVICE steps=$STEPS batch=$BATCH d=$D_MODEL L=$N_LAYERS"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

start=$(date +%s)
$PY -m irl_agents.cli pretrain --stream grid --stream-relabel --stream-noise 0.2 --stream-chunk $((BATCH * 32)) \
  --stream-workers "$WORKERS" \
  --obs-encoder grid_objects --d-model "$D_MODEL" --n-layers "$N_LAYERS" --d-mlp "$D_MLP" \
  --lr "$LR" --lr-schedule cosine --batch-size "$BATCH" --steps "$STEPS" \
  --eval-every $((STEPS / 8 > 0 ? STEPS / 8 : 1)) --checkpoint-every $((STEPS / 4 > 0 ? STEPS / 4 : 1)) \
  --milestones $MILESTONES --val-episodes "$VAL_EPISODES" --device "$DEVICE" --no-progress \
  --out "$OUT/run"
echo "== pretraining took $(( $(date +%s) - start )) s"

$PY -m irl_agents.cli data --env grid --task-set pretrain --episodes 20000 --seed 0 \
  --out "$OUT/grid-pretrain-20k.safetensors" --no-progress
start=$(date +%s)
# one process per milestone: controller training is small-batch work that threads barely speed
pids=()
for step in $MILESTONES; do
  $PY benchmarks/diagnostics/scaling_grid.py eval "$OUT/run" --steps "$step" \
    --dataset "$OUT/grid-pretrain-20k.safetensors" --layers $LAYERS --episodes "$EPISODES" \
    --controller-steps "$CTRL_STEPS" --threads 2 &
  pids+=($!)
done
wait "${pids[@]}"  # not a bare wait: it would also wait for the tee behind the log
$PY benchmarks/diagnostics/scaling_grid.py table "$OUT/run"
$PY benchmarks/diagnostics/scaling_grid.py plot "$OUT/run" --out "$OUT/scaling_gpu.png"
echo "== evaluation took $(( $(date +%s) - start )) s"
