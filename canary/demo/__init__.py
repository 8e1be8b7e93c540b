"""`canary demo`: a real rollout on the local mesh, watched live, summed up in a report."""
