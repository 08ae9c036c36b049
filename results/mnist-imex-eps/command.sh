# Issue 29 §1, variant 2 (a larger ε, <= 30 min): the shipped IMEX recipe (results/mnist-imex-probe: eps 0.1, Adam 1e-3, plateau) with eps 0.5, from scratch;
# validation compared with the shipped run's at the same step. Resume: the same command with --resume appended.
afrnn-train --task mnist --model afrnn --name mnist-imex-eps0.5 --discretisation imex --epsilon 0.5 --threads 1 --epochs 40 --max-minutes 30 --checkpoint-minutes 5 --eval-every 200 --val-size 5000 --no-progress --log-every 20 --data-dir ../shared/data --out-dir results/mnist-imex-eps "$@"
