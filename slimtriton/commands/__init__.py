"""The `slimtriton` sub-commands, one module each (slimtriton/cli.py lists them).

`slimtriton ...` imports every command module to build its parser, so a command imports what
only its run needs (the nets, the kernels, torch, the data pipeline) inside the function
that runs it, each such import marked `# lazy`.
"""
