# Issue 29 §1: a second cosine cycle for the shipped IMEX MNIST model (results/mnist-imex-cosine, 97.72 %), at half the first cycle's peak lr.
# Resume: the same command with --resume appended.
afrnn-train --task mnist --model afrnn --name mnist-imex-cosine2 --discretisation imex --init-from results/mnist-imex-cosine/mnist-imex-cosine.json --optimizer adam --lr 1.5e-4 --lr-schedule cosine --grad-clip 5 --epochs 4 --val-size 5000 --eval-every 215 --threads 1 --max-minutes 40 --checkpoint-minutes 5 --no-progress --log-every 20 --data-dir ../shared/data --out-dir results/mnist-imex-cosine2 "$@"
