# Issue 29 §2, the capacity lever: the paper preset (eps 0.01, gamma 0.001, Adagrad 1e-2) at 2 x 256 units instead of 2 x 128,
# with the IMEX step (at eps 0.01 within O(eps^2) of Euler); validation compared with results/cifar10-paper (2 x 128, Euler) at the same step.
# Resume: the same command with --resume appended (raise --max-minutes to continue it as a full run).
afrnn-train --task cifar10 --model afrnn --name cifar10-wide-probe --preset paper --discretisation imex --hidden-size 256 --val-size 5000 --eval-every 176 --threads 1 --max-minutes 55 --checkpoint-minutes 5 --no-progress --log-every 20 --data-dir ../shared/data --out-dir results/cifar10-wide-probe "$@"
