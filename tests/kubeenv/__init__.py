"""A real kube-apiserver and etcd for the end-to-end tests, built from their Go modules.

`assets` finds what is built or fetched outside the repository (the two binaries, Istio's CRDs);
`cluster` runs the servers on loopback; `crds` installs CRDs into them.
"""
