# The paper-preset CIFAR-10 model (Euler, eps 0.01; results/cifar10-paper-lr1e-3), fine-tuned with the IMEX step and Adam + cosine.
# Resume: restore this run's <name>.train.pt from git history (docs/results.md, "Resuming a run"), then run this script with --resume.
afrnn-train --task cifar10 --model afrnn --name cifar10-imex-ft --preset paper --discretisation imex --init-from checkpoints/cifar10.json --optimizer adam --lr 3e-4 --lr-schedule cosine --grad-clip 5 --epochs 14 --val-size 5000 --eval-every 176 --threads 1 --max-minutes 165 --checkpoint-minutes 5 --no-progress --log-every 20 --data-dir ../shared/data --out-dir results/cifar10-imex-ft "$@"
# As run: started with the command above, resumed once right after a state save
# (epoch 1, step 149): `bash command.sh --resume --epochs 10 --max-minutes 135`.
# --init-from checkpoints/cifar10.json was then the paper-preset Euler model of results/cifar10-paper-lr1e-3.
