"""syncops: bring every new environment up with its datastore.

The sync engine (discover, hydrate, push, verify) lives here and never imports pulumi;
the Pulumi program's pieces live in :mod:`syncops.provision`.
"""

__version__ = "0.1.0"
