"""The host program: what runs on a target host during a deploy (docs/architecture.md).

Each module here is written for the host's interpreter (standard library only, Python 3.6+)
and type-checked like the rest of the package. `bundle.host_program()` joins them into the
one source text that is shipped (`python -S -c SOURCE serve`); `protocol` is also imported by
the runner, so both sides share one definition of every operation and name.

protocol  the operations with typed requests and answers; names and formats both sides use
fsops     state in one round trip, the lock, links, atomic writes, removal
envfile   the environment file of a release (0600), compared by name
tree      walk and hash a release; the hash index
seed      hard-linked seed of a new release; the next seed prepared ahead
upload    unpack the upload stream
procs     bounded commands: venv build with the install, the restart, hooks (output streamed)
services  the health-gated switch: start a release's process, check it, stop it
linger    the copy kept for the next command: a loopback port, keyed both ways
serve     the request loop and the one-shot `hash` command
bundle    (runner side only) the shipped source
"""
