"""How runs are started: sweeps of `jaxdebias.main` runs, locally, on a Cloud TPU VM or on SLURM.

`launch.sweep` expands a sweep file into named runs and their command lines; `launch.run`,
`launch.tpu_vm` and `launch.slurm` start them, and `launch.collect` tabulates their results.
"""
