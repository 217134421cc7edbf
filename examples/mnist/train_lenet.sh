#!/usr/bin/env bash
# Caffe's examples/mnist recipe (create_mnist.sh, then train_lenet.sh) run with npcaffe, on
# digits rendered by make_digits.py instead of the MNIST download:
#
#   examples/mnist/train_lenet.sh [WORK_DIR]          (default: examples/mnist/work)
#
# The prototxts are Caffe's own (shared/models/lenet_mnist: lenet_solver.prototxt,
# lenet_train_test.prototxt), copied into WORK_DIR with only the paths changed (databases, net,
# snapshot_prefix) and test_iter set to cover the rendered test set once, as Caffe's 100 covers
# MNIST's 10,000. Environment:
#   LENET_MODELS  folder of Caffe's LeNet prototxts (default: $FCN_SHARED or ../shared, /models/lenet_mnist)
#   N_TRAIN, N_TEST  digits to render (4000, 1000)
#   MAX_ITER      shorten training (default: the solver's 10000)
#   NPCAFFE       the command (default: npcaffe)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
models=${LENET_MODELS:-${FCN_SHARED:-$repo/../shared}/models/lenet_mnist}
work=${1:-$here/work}
npcaffe=${NPCAFFE:-npcaffe}
n_train=${N_TRAIN:-4000}
n_test=${N_TEST:-1000}
test_iter=$(( n_test / 100 ))

for f in lenet_solver.prototxt lenet_train_test.prototxt; do
  [ -f "$models/$f" ] || { echo "error: $models/$f not found (set LENET_MODELS)" >&2; exit 1; }
done
mkdir -p "$work"
work=$(cd "$work" && pwd)

# create_mnist.sh: the data, then the databases
python3 "$here/make_digits.py" "$work" --train "$n_train" --test "$n_test"
for split in train test; do
  db="$work/digits_${split}_lmdb"
  if [ -e "$db" ]; then
    echo "error: $db exists; remove it or use another WORK_DIR" >&2
    exit 1
  fi
  $npcaffe convert_imageset --gray --backend=lmdb "$work/" "$work/$split.txt" "$db"
done

# Caffe's prototxts with this work folder's paths
sed -e "s#examples/mnist/mnist_train_lmdb#$work/digits_train_lmdb#" \
    -e "s#examples/mnist/mnist_test_lmdb#$work/digits_test_lmdb#" \
    "$models/lenet_train_test.prototxt" > "$work/lenet_train_test.prototxt"
sed -e "s#examples/mnist/lenet_train_test.prototxt#$work/lenet_train_test.prototxt#" \
    -e "s#\"examples/mnist/lenet\"#\"$work/lenet\"#" \
    -e "s#^test_iter: .*#test_iter: $test_iter#" \
    ${MAX_ITER:+-e "s#^max_iter: .*#max_iter: $MAX_ITER#"} \
    "$models/lenet_solver.prototxt" > "$work/lenet_solver.prototxt"
max_iter=$(sed -n 's/^max_iter: *//p' "$work/lenet_solver.prototxt")

# train_lenet.sh
$npcaffe train --solver="$work/lenet_solver.prototxt" 2>&1 | tee "$work/train.log"

# score the final snapshot on the test set
$npcaffe test -model "$work/lenet_train_test.prototxt" \
    -weights "$work/lenet_iter_${max_iter}.caffemodel" -iterations "$test_iter" 2>&1 \
    | tee "$work/test.log"
