"""gatebot.deploy: atomic delta releases over SSH (docs/deploy.md, docs/architecture.md).

hostside/   the host program (standard library, Python 3.6+) and its protocol: typed requests
            and answers, and the names both sides use
host/       the host seam: HostAgent (one method per operation), over SSH or in memory
steps/      the deploy as named steps: plan, build, switch, restart, verify, recover, retain
flow        the orchestrator: the step lists, one host under its lock, the entry points
rollout     batches and max-fail across hosts; the run's exit from the hosts' failures
context     what a run needs (config, env, connector, hooks), read once by the CLI
admin       releases listing, unlock
history     one run-history record per host
layout      remote paths and release ids (shared with audit and doctor)
manifest    the git tree of a commit via pygit2; refuses paths and links escaping the release
stream      the upload stream's records
integrity   compare a release on the host with the manifest
lock        atomic mkdir lock with its owner; LockHeld, unlock
transfer    hard-linked seed, the plan, one stream of changed blobs
venv        one virtualenv per lock-file hash
switch      `current` renamed atomically; the restart command
log         the deploy log (which release was live when, which are bad)
state       current, releases, venvs, lock and log in one round trip
retention   keep N, never the live or the previous good release
progress    progress bar or plain lines; the summary table
report      the per-host report, built from step results
"""
