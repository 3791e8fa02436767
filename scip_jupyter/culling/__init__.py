"""GPUs that are held must be used: GPU-aware idle culling, budgets while running,
GPU monitoring, reclaimed GPU-hours (see docs/culling.md).

| module | holds | I/O |
|---|---|---|
| `settings.py` | traitlets: `GPUCulling` (per-profile threshold, idle and warning times), `BudgetWatcher` | none |
| `policy.py` | pure cull decisions (warn, cull, keep, activity rule) | none |
| `sources.py` | GPU utilisation: Prometheus (DCGM exporter, PromQL over HTTP), NVML, static | metrics |
| `arbiter.py` | jupyterhub-idle-culler's `cull_arbiter_hook`: one source read per round, decisions, records | source, DB |
| `budget.py` | pure budget assessment (90 % warning, exhausted, grace) and the watcher loop | DB, hub API |
| `records.py` | cull records and notices (SQLAlchemy, in the ledger's database), reclaimed GPU-hours | DB |
| `notices.py` | what a notice says, in the reader's language; `open_notice_texts` for hub pages | DB |
| `cli.py` | `scip-jupyter gpu reclaimed|culls`; `reclaimed_lines` (also under `scip-jupyter usage`) | DB |
| `service.py` | the `scip-gpu` hub service: idle culler + budget watcher + notices endpoint | hub |
| `hub.py` | `configure_gpu(c, setup, wiring)`: the `hub_setup.FEATURES` entry | hub config |
| `monitor.py` | the GPU monitor widget's model (per-server utilisation, memory, history) | source |
"""
