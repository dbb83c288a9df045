"""Exchange adapters: one folder per venue, the shared machinery in ``common``,
and the registries above them (recorded formats, live feeds, the fake server)."""
