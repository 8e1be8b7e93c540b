"""`canary validate`: check Canary, MetricTemplate, VirtualService and DestinationRule files.

`loader` reads the files into documents, `canary.api.problems` words the model errors,
`crosscheck` checks the objects against each other the way `istioctl analyze` would (and for
the fields only a canary controller cares about), and `report` puts it together for the CLI.
This package sits above `canary.api` and below `canary.cli`; it never imports the engine.
"""
