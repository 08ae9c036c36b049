#!/bin/bash
# The other rows of the paper's Table 3 with the same recipe as the AFRNN rows and s0 at every input step.
R="--lr 2e-3 --lr-schedule cosine --grad-clip 5 --batch-size 32 --epochs 400 --val-size 90 --threads 1 --max-minutes 6.5 --no-progress --resume"
AF="--update sequential --epsilon 0.2 --gamma 0.05 --init-std 1"
E="--pendulum-input initial-every-step"
O="--out-dir results/pendulum-recipe-rows-every"
afrnn-train --task pendulum --model lstm --name pendulum-cos-every-lstm $E $R $O
for m in arnn frnn 2-arnn; do afrnn-train --task pendulum --model $m --name pendulum-cos-every-$m $AF $E $R $O; done
