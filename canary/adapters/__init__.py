"""One module or package per outside system; each implements a Protocol of canary.ports."""
