"""`glus batch --ray`: one batch spread over the GPUs (or CPUs) of a Ray cluster, with local batch's outputs.

The driver (the `glus` process, which never imports torch) plans the batch exactly as a local run does and
hands whole videos, longest first, to long-lived Ray Core actors; each actor loads the model once and runs
every video through `glus_cli.batch.run_batch`, so the outputs, and the resume rule that `expression.json`
is written last, are those of a local run. The modules:

- `plan`: which videos are pending and in which order they are sent (torch- and Ray-free);
- `dispatch`: the driver's bookkeeping of workers, queue and attempts (pure, no Ray);
- `shared_output`: the per-(OUT, shard) driver lock and the sentinel that proves every worker sees OUT;
- `cluster`: starting or joining a cluster, and sizing the workers to its nodes;
- `worker`: the actor (`GlusWorker`), the progress board the workers feed, and the test-only fault hook;
- `driver`: the loop that ties them together (`run_on_ray`).
"""
