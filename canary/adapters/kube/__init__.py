"""The Kubernetes adapter: a watch-fed cache, the Store, the Router, Events and leader election."""
