"""A deploy as named steps over the host seam (bot/deploy/host/); composed in bot/deploy/flow.py.

base      HostRun (inputs and step results), Step, hook points, run_steps
plan      read the state; decide already-live / reuse / build, or which release to roll back to
build     seed, upload, shared links, venv, check against git, completion marker
golive    switch `current`, restart, verify (the 9-layer audit)
recover   roll back after a failed restart or audit, or after a cut past the switch
retain    prune old releases and venvs; prepare the next seed
dryrun    what a deploy would do
"""
