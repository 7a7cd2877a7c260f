"""minimatte's hand-written array kernels, installed as `minimatte.kernels` (see README.md here).

Import the submodules (`minimatte.kernels.attention`, `.conv`, `.nn`, `.resize`). This file imports
nothing and has no __version__ on purpose: from the repository root, `import kernels` then finds an
inert folder rather than breaking tools that probe for the unrelated PyPI package `kernels`.
"""
