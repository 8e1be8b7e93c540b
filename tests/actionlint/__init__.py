"""actionlint, the linter of deploy/pipelines/github-actions.yaml in the pipeline tests.

`build` builds it from its Go module through the wrapper module here; `assets` finds the build
and the shellcheck it runs on the workflow's `run:` steps.
"""
