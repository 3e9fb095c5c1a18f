"""The paper's claims reproduced on models that run here: one ``python -m sdelab reproduce`` experiment a module."""
