#!/bin/bash
#SBATCH --job-name=scip-injob-alice-default
#SBATCH --comment=scip.ca:user=alice,server=%64efault,project=def-smith,site=rorqual,jurisdiction=CA
#SBATCH --ntasks=5
#SBATCH --cpus-per-task=2
#SBATCH --mem-per-cpu=2048M
#SBATCH --time=03:00:00
#SBATCH --output=/dev/null
#SBATCH --partition=cpubase_bycore_b1
#SBATCH --account=def-smith
# SCIP in-job Dask run: task 0 scheduler, task 1 client (your code), tasks 2+ workers.
RUN='.scip/injob/abc123'
case "$RUN" in /*) ;; *) RUN="$HOME/$RUN" ;; esac
umask 077  # the run folder, its TLS key and results: this account only
mkdir -p "$RUN" && chmod 700 "$RUN" && cd "$RUN" || exit 3
exec >>"$RUN/job.log" 2>&1
trap 'echo "$(date -Is) stopped by a signal" > "$RUN/signalled"' TERM
echo "$(date -Is) job $SLURM_JOB_ID on $(hostname): 5 tasks"
cat > "$RUN/driver.py" <<'SCIP_DRIVER_EOF'
print('driver')
SCIP_DRIVER_EOF
cat > "$RUN/payload.b64" <<'SCIP_PAYLOAD_EOF'
UEFZTE9BRA==
SCIP_PAYLOAD_EOF
module load python/3.11
export SCIP_INJOB_DIR="$RUN"
export SCIP_INJOB_SCHEDULER_OPTIONS='{}'
/opt/env/bin/python "$RUN/driver.py" --make-tls || { echo "could not make the run's TLS credentials"; echo 4 > "$RUN/exit_code"; exit 4; }
srun --ntasks=5 --kill-on-bad-exit=1 /opt/env/bin/python "$RUN/driver.py" &
wait $!
code=$?
echo $code > "$RUN/exit_code"
exit $code
