# The IMEX pendulum of results/pendulum-imex (2 x 256) given a second cosine cycle (warm restart at 7e-4); shipped as checkpoints/pendulum.
# Resume: restore this run's <name>.train.pt from git history (docs/results.md, "Resuming a run"), then run this script with --resume.
afrnn-train --task pendulum --model afrnn --name pendulum-imex-ft --init-from checkpoints/pendulum.json --discretisation imex --trajectories 50000 \
  --points 30 --data-seed 1 --solver joint --hidden-size 256 --update simultaneous --epsilon 0.2 --gamma 0.05 \
  --init-std 1 --lr 7e-4 --lr-schedule cosine --grad-clip 5 --batch-size 64 --epochs 85 --val-size 1000 \
  --standardize --loss-weights 0.36 0.85 3.66 6.66 --pendulum-input initial-every-step --max-minutes 138 \
  --checkpoint-minutes 5 --threads 1 --log-every 200 --no-progress --out-dir results/pendulum-imex-ft "$@"
# As run: started with the command above, resumed twice, each time right after a 5-minute state save:
# `bash command.sh --resume --epochs 70` (at epoch 10) and
# `bash command.sh --resume --epochs 52` (at epoch 17); the cosine schedule follows the last --epochs.
# --init-from checkpoints/pendulum.json was then the model of results/pendulum-imex (the same weights).
