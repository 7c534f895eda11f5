"""gatebot.deploy: atomic delta releases over SSH (docs/deploy.md).

layout      remote paths and release ids (shared with audit and doctor)
manifest    the git tree of a commit via pygit2; refuses paths and links escaping the release
integrity   the host hashes a release; compare with the manifest
agent       one channel per deploy running agent_script.py with the host's python
lock        atomic mkdir lock with its owner; LockHeld, unlock
transfer    hard-linked seed, the plan, one stream of changed blobs
venv        one virtualenv per lock-file hash
switch      `current` renamed atomically; the restart command
log         the deploy log (which release was live when, which are bad)
state       current, releases, venvs, lock and log in one round trip
retention   keep N, never the live or the previous good release
flow        deploy / redeploy / rollback / releases / unlock, rolled out in batches
progress    progress bar or plain lines; the summary table
report      the per-host report
"""
