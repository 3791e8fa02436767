#!/usr/bin/env bash

#SBATCH -J scip-dask-worker-alice-lab
#SBATCH -A rrg-alice
#SBATCH -n 1
#SBATCH --cpus-per-task=4
#SBATCH --mem=16G
#SBATCH -t 3-00:00:00
#SBATCH --comment=scip.ca:user=alice,server=lab,project=def-alice,site=scip-local,jurisdiction=CA
#SBATCH --gres=gpu:a100:4
#SBATCH --output=/home/alice/.cache/scip-jupyter/arc-logs/%x-%j.out
#SBATCH --error=/home/alice/.cache/scip-jupyter/arc-logs/%x-%j.err

/opt/scip/.venv/bin/python -m distributed.cli.dask_worker tls://10.0.0.5:8786 --name ARCCluster-${SLURM_ARRAY_TASK_ID} --nthreads 4 --memory-limit 16.00GiB --nanny --death-timeout 60 --local-directory ${SLURM_TMPDIR:-/tmp} --lifetime 258900s --lifetime-stagger 60s
