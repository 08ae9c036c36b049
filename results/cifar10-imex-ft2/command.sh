# Issue 29 §2: a second cosine cycle for the shipped CIFAR-10 model (results/cifar10-imex-ft: paper preset, IMEX, 48.84 %).
# Resume: the same command with --resume appended.
afrnn-train --task cifar10 --model afrnn --name cifar10-imex-ft2 --preset paper --discretisation imex --init-from results/cifar10-imex-ft/cifar10-imex-ft.json --optimizer adam --lr 2e-4 --lr-schedule cosine --grad-clip 5 --epochs 10 --val-size 5000 --eval-every 176 --threads 1 --max-minutes 160 --checkpoint-minutes 5 --no-progress --log-every 20 --data-dir ../shared/data --out-dir results/cifar10-imex-ft2 "$@"
