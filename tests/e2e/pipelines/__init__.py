"""deploy/pipelines/: the GitHub Actions workflow and the GitLab job, linted by their own tools
and their shell run against a live `canary demo --state-dir`."""
