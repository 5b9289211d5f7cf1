"""How long syncops waits: per request, and per command.

* ``connect`` — seconds to open a connection (``SYNCOPS_CONNECT_TIMEOUT``, default 10);
* ``read`` — the longest silence allowed on an open connection, waiting for an answer or for the next
  bytes of a body (``SYNCOPS_READ_TIMEOUT``, default 60). A silent server fails the request after this,
  and the retry policy decides whether to try again;
* the command deadline — how long one CLI command may run in all (``--deadline`` or
  ``SYNCOPS_DEADLINE``, default 6 hours; 0 turns it off). A server that trickles a byte now and then
  never trips a read timeout; the deadline still ends the command (exit 4).

Every client takes its per-request values from here: boto3 (control plane), obstore (S3 data plane)
and the GCS session, so one variable changes all of them.
"""

from __future__ import annotations

from syncops import environment

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
#: The default overall deadline of one command, in seconds.
DEADLINE = 6 * 3600.0


#: No timeout is longer than a year (the clients' duration types overflow long before infinity).
LONGEST = 366 * 86400.0


def connect() -> float:
    return environment.number("SYNCOPS_CONNECT_TIMEOUT", CONNECT_TIMEOUT, minimum=0, above=True, maximum=LONGEST)


def read() -> float:
    return environment.number("SYNCOPS_READ_TIMEOUT", READ_TIMEOUT, minimum=0, above=True, maximum=LONGEST)
