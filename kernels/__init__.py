"""minimatte's hand-written array kernels, installed as `minimatte.kernels` (see README.md here).

Import the submodules (`minimatte.kernels.attention`, `.conv`, `.nn`, `.resize`). From the repository root,
`python -c` and `python -m` (which put the working directory first on sys.path) find this folder as a package
`kernels`, in place of the unrelated PyPI package that transformers imports from 5.25 on: the tests and the
benchmarks' child processes keep the root off sys.path. This file imports nothing and has no __version__, so
that tools probing for that package there find an inert folder.
"""
