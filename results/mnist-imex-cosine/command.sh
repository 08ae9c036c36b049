# Issue 29 §1, variant 1 (cosine decay, <= 30 min): the shipped IMEX MNIST model (results/mnist-imex-probe, 97.43 %), fine-tuned with Adam + cosine.
# Resume: the same command with --resume appended.
afrnn-train --task mnist --model afrnn --name mnist-imex-cosine --discretisation imex --init-from results/mnist-imex-probe/mnist-imex.json --optimizer adam --lr 3e-4 --lr-schedule cosine --grad-clip 5 --epochs 4 --val-size 5000 --eval-every 100 --threads 1 --max-minutes 30 --checkpoint-minutes 5 --no-progress --log-every 20 --data-dir ../shared/data --out-dir results/mnist-imex-cosine "$@"
