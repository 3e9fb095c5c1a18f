"""The command line's front ends: each module parses its arguments with the standard library alone and
imports torch and the models only in ``run``, so that ``--help`` answers at once."""
