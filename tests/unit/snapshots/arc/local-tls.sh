#!/usr/bin/env bash

#SBATCH -J scip-dask-worker-alice-lab
#SBATCH -p cpu
#SBATCH -A def-demo
#SBATCH -n 1
#SBATCH --cpus-per-task=1
#SBATCH --mem=512M
#SBATCH -t 01:00:00
#SBATCH --comment=scip.ca:user=alice,server=lab,project=def-alice,site=scip-local,jurisdiction=CA
#SBATCH --output=/home/alice/.cache/scip-jupyter/arc-logs/%x-%j.out
#SBATCH --error=/home/alice/.cache/scip-jupyter/arc-logs/%x-%j.err

/opt/scip/.venv/bin/python -m distributed.cli.dask_worker tls://10.0.0.5:8786 --name ARCCluster-${SLURM_ARRAY_TASK_ID} --nthreads 1 --memory-limit 512.00MiB --nanny --death-timeout 60 --local-directory ${SLURM_TMPDIR:-/tmp} --lifetime 3300s --lifetime-stagger 60s --protocol tls:// --tls-ca-file /home/alice/.cache/scip-jupyter/arc-tls/ca.pem --tls-cert /home/alice/.cache/scip-jupyter/arc-tls/worker.pem --tls-key /home/alice/.cache/scip-jupyter/arc-tls/worker.key
