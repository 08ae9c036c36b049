# Issue 29 §3, the LSTM gap: the paper's 2-layer LSTM on the shipped pendulum model's data and recipe
# (45 000 simulated trajectories, s0 at every step, standardised, the same loss weights and cosine
# schedule), to compare with the AFRNN on the same data. Resume: the same command with --resume appended.
afrnn-train --task pendulum --model lstm --name pendulum-lstm-45k --trajectories 50000 \
  --points 30 --data-seed 1 --solver joint --lr 2e-3 --lr-schedule cosine --grad-clip 5 --batch-size 64 \
  --epochs 85 --val-size 1000 --standardize --loss-weights 0.36 0.85 3.66 6.66 \
  --pendulum-input initial-every-step --max-minutes 38 --checkpoint-minutes 5 --threads 1 --log-every 200 \
  --no-progress --out-dir results/pendulum-lstm-45k "$@"
